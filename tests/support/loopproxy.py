"""What the test proxies (`faultproxy`, `tlsproxy`) share: a listener on 127.0.0.1 served by an
asyncio loop in a daemon thread, started and stopped from the test thread within bounded time."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable
from types import TracebackType
from typing import Any, TypeVar

__all__ = ["HOST", "TIMEOUT", "LoopProxy", "pump_both_ways"]

HOST = "127.0.0.1"
TIMEOUT = 5.0

_P = TypeVar("_P", bound="LoopProxy")


async def pump_both_ways(*pumps: Coroutine[Any, Any, None]) -> None:
    """Run the pumps of one connection; either ending (EOF, error, fault) ends them all."""
    tasks = [asyncio.ensure_future(pump) for pump in pumps]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class LoopProxy:
    """A proxy from ``127.0.0.1:port`` to ``target_host:target_port``; subclasses handle each
    connection (`_handle`) and say which handler tasks to cancel at stop (`_open_tasks`)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        """Configure the proxy; `start` (or ``with``) opens the listening port."""
        self.target_host = target_host
        self.target_port = target_port
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The local port clients connect to."""
        if self._port is None:
            raise RuntimeError("the proxy is not started")
        return self._port

    def start(self: _P) -> _P:
        """Start the loop thread and listen on a free port; returns self."""
        if self._loop is not None:
            return self
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        """Close the listener and all connections, stop the loop and join its thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            self._call(self._shutdown())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(TIMEOUT)
            self._loop = self._thread = None
            if thread.is_alive():
                raise RuntimeError(f"{type(self).__name__} thread did not stop")

    def __enter__(self: _P) -> _P:
        """Start the proxy."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the proxy."""
        self.stop()

    # -- loop thread ----------------------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(TIMEOUT)

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, HOST, 0)
        self._port = int(self._server.sockets[0].getsockname()[1])

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._open_tasks())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def _open_tasks(self) -> Iterable[asyncio.Task[None]]:
        """The connection handlers still running (cancelled at stop)."""
        raise NotImplementedError

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError
