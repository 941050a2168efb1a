"""A small TCP fault proxy for fault tests (a toxiproxy in miniature).

`FaultProxy` listens on 127.0.0.1, forwards to a target server, and can be switched between
modes while clients are connected:

- ``"pass"``: forward both ways (with optional `FaultProxy.latency` on replies);
- ``"blackhole"``: accept and read, never forward or answer (also on existing connections), the
  way a dead host or a dropped route looks to a client: it times out;
- ``"reset"``: close every connection with a TCP reset and reset new ones at once.

`FaultProxy.drop_next_reply` makes the "did my write apply?" case: the next command is
delivered, its reply is discarded and the client connection is cut.

The proxy runs an asyncio loop in a daemon thread; `FaultProxy.stop` closes everything and joins
the thread within a bounded time.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Iterable
from typing import Literal

from tests.support.loopproxy import HOST, TIMEOUT, LoopProxy, pump_both_ways

__all__ = ["FaultProxy", "Mode"]

Mode = Literal["pass", "blackhole", "reset"]
_MODES: tuple[str, ...] = ("pass", "blackhole", "reset")
_CHUNK = 65536


def _abort(writer: asyncio.StreamWriter | None) -> None:
    """Close with RST (SO_LINGER 0) so the peer sees a reset, not a clean EOF."""
    if writer is None or writer.transport.is_closing():
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Connection:
    """One client connection and, once connected, its upstream connection."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.server: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[None] | None = asyncio.current_task()
        # Set when the chunk just forwarded is the one whose reply must be dropped.
        self.drop_reply = False

    def abort(self) -> None:
        _abort(self.client)
        _abort(self.server)


class FaultProxy(LoopProxy):
    """TCP proxy from ``127.0.0.1:port`` to ``target_host:target_port`` with switchable faults."""

    def __init__(self, target_host: str, target_port: int) -> None:
        """Configure the proxy; `start` (or ``with``) opens the listening port."""
        super().__init__(target_host, target_port)
        self._mode: Mode = "pass"
        self._latency = 0.0
        self._drop_armed = False
        self._connections: set[_Connection] = set()

    # -- control (called from the test thread) --------------------------------------------------

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:port/0`` for clients that should go through the proxy."""
        return f"redis://{HOST}:{self.port}/0"

    @property
    def mode(self) -> Mode:
        """Current mode: "pass", "blackhole" or "reset"."""
        return self._mode

    @mode.setter
    def mode(self, value: Mode) -> None:
        if value not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, not {value!r}")
        self._mode = value
        if value == "reset" and self._loop is not None:
            # Synchronous: when the setter returns, every existing connection is gone.
            self._call(self._reset_all())

    def latency(self, seconds: float) -> None:
        """Delay every server->client chunk by `seconds` (0 turns it off)."""
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        self._latency = seconds

    def drop_next_reply(self) -> None:
        """Forward the next client->server chunk, discard the reply and cut that client.

        The command is applied by the server, yet the client sees a connection error. Make sure
        the client is already connected (e.g. PING first): otherwise its handshake commands are
        the "next chunk".
        """
        self._drop_armed = True

    def __repr__(self) -> str:
        """Show route and mode."""
        return (
            f"<FaultProxy {HOST}:{self._port} -> {self.target_host}:{self.target_port} "
            f"mode={self._mode} latency={self._latency}>"
        )

    # -- loop thread ----------------------------------------------------------------------------

    async def _reset_all(self) -> None:
        for connection in list(self._connections):
            connection.abort()

    def _open_tasks(self) -> Iterable[asyncio.Task[None]]:
        tasks = []
        for connection in list(self._connections):
            connection.abort()  # the client sees the close at once
            if connection.task is not None:
                tasks.append(connection.task)
        return tasks

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = _Connection(writer)
        if self._mode == "reset":
            connection.abort()
            return
        self._connections.add(connection)
        try:
            if self._mode == "blackhole":
                # Never connect upstream: read and swallow until the client gives up.
                while await reader.read(_CHUNK):
                    pass
                return
            try:
                upstream_reader, upstream = await asyncio.wait_for(
                    asyncio.open_connection(self.target_host, self.target_port), TIMEOUT
                )
            except (OSError, asyncio.TimeoutError):
                return
            connection.server = upstream
            await pump_both_ways(
                self._client_to_server(connection, reader, upstream),
                self._server_to_client(connection, upstream_reader, writer),
            )
        finally:
            self._connections.discard(connection)
            connection.abort()

    async def _client_to_server(
        self, connection: _Connection, reader: asyncio.StreamReader, upstream: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(_CHUNK):
                if self._mode != "pass":
                    continue
                if self._drop_armed:
                    self._drop_armed = False
                    connection.drop_reply = True
                upstream.write(data)
                await upstream.drain()

    async def _server_to_client(
        self, connection: _Connection, reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(_CHUNK):
                if self._mode != "pass":
                    continue
                if connection.drop_reply:
                    # The server has executed the command; the client never hears about it.
                    return
                if self._latency:
                    await asyncio.sleep(self._latency)
                client.write(data)
                await client.drain()
