"""asyncio connections that belong to the event loop that opened them.

An asyncio socket works only on its own event loop. A client kept across loops (a module-level
store, FastAPI's ``client = TestClient(app)`` that runs every request in a new loop,
``asyncio.run`` called twice) would otherwise hand the next loop a connection of the last one:
"Future attached to a different loop", "Event loop is closed", or an unclosed socket.

`loop_bound` makes a redis-py asyncio connection class whose connections remember their loop:

- used from another loop, a connection drops its socket and reconnects on the caller's loop
  (the hot path pays one identity check: its loop against the running one);
- a socket of a loop still open is closed by that loop (thread-safe, when it next runs), one
  of a closed loop at once, without it and without warnings;
- when a loop ends through ``asyncio.run``, ``asyncio.Runner``, anyio or Starlette's
  ``TestClient`` (all call ``loop.shutdown_asyncgens()`` before closing it), every connection
  it opened is closed on it first, so nothing is left to a closed loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import AsyncIterator
from typing import Any

__all__ = ["loop_bound"]

_Conn = Any  # a redis.asyncio.connection.AbstractConnection

# Per live loop: the connections opened on it, and the guard generator that closes them when
# the loop shuts down (held here: the loop keeps its generators only weakly).
_opened: dict[asyncio.AbstractEventLoop, tuple[weakref.WeakSet[_Conn], AsyncIterator[None]]] = {}
_opened_lock = threading.Lock()
_classes: dict[type, type] = {}


def loop_bound(cls: type) -> type:
    """The subclass of a redis-py asyncio connection class whose connections belong to their
    event loop (cached: one subclass per class)."""
    if getattr(cls, "_loop_bound", False):
        return cls
    with _opened_lock:
        sub = _classes.get(cls)
        if sub is None:
            sub = _classes[cls] = type(
                cls.__name__,
                (_LoopBound, cls),
                {"__module__": __name__, "__qualname__": cls.__qualname__},
            )
    return sub


class _LoopBound:
    """Mixin over a redis-py asyncio connection class (see the module docstring)."""

    _loop_bound = True
    _loop: asyncio.AbstractEventLoop | None = None
    _reader: Any
    _writer: Any
    _parser: Any

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop  # first: a unix connection sends its handshake inside _connect
        await super()._connect()  # type: ignore[misc]
        await _watch(loop, self)

    @property
    def is_connected(self) -> bool:
        if self._writer is None or self._reader is None:
            return False
        running = asyncio._get_running_loop()
        if running is None or running is self._loop:
            return True
        self._abandon()  # opened on another loop: reconnect on this one
        return False

    def _abandon(self) -> None:
        writer, loop = self._writer, self._loop
        self._reader = self._writer = None
        self._parser.on_disconnect()
        if loop is not None and not loop.is_closed():
            # Its own loop closes it (thread-safe; when it next runs, if idle now).
            with contextlib.suppress(RuntimeError):  # it closed meanwhile
                loop.call_soon_threadsafe(writer.close)
                return
        close_without_loop(writer)


async def _watch(loop: asyncio.AbstractEventLoop, connection: _Conn) -> None:
    # Slow path, once per connect: remember the connection; on a loop's first one, start the
    # generator whose `finally` runs at the loop's shutdown_asyncgens().
    entry = _opened.get(loop)
    if entry is None:
        guard = None
        with _opened_lock:
            for old in [old for old in _opened if old.is_closed()]:
                del _opened[old]  # closed without shutdown_asyncgens
            entry = _opened.get(loop)
            if entry is None:
                guard = _guard(loop)
                entry = _opened[loop] = (weakref.WeakSet(), guard)
        if entry[1] is guard:
            await guard.__anext__()  # first iteration here: the loop adopts the generator
    entry[0].add(connection)


async def _guard(loop: asyncio.AbstractEventLoop) -> AsyncIterator[None]:
    try:
        yield
    finally:
        with _opened_lock:
            entry = _opened.pop(loop, None)
        for connection in list(entry[0]) if entry else ():
            if connection._loop is loop and connection._writer is not None:
                with contextlib.suppress(Exception):  # a dead socket is closed all the same
                    await connection.disconnect()  # TLS: its close_notify too


def close_without_loop(writer: Any) -> None:
    """Close an asyncio stream's socket after its loop closed, with no ResourceWarning: the
    transports are marked closing, the socket is closed here."""
    transport = writer.transport
    with contextlib.suppress(RuntimeError):  # "Event loop is closed": the rest is done below
        transport.abort()
    # A TLS transport wraps the socket's transport.
    inner = getattr(getattr(transport, "_ssl_protocol", None), "_transport", None) or transport
    sock = getattr(inner, "_sock", None)
    if sock is not None:
        sock.close()
        inner._sock = None
