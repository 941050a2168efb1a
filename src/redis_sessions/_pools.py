"""The connection pools `connect` and `connect_async` build, and the first come, first served
hand-over (`Handover`) that the asyncio pool and the store's `TaskGate` wait on."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from redis.exceptions import MaxConnectionsError

__all__ = ["BlockingSentinelPool", "Handover", "SentinelWaitingPool", "WaitingPool"]


# How often a Sentinel pool asks the Sentinels which server is the master, at most. redis-py
# asks only when it opens a connection: after a graceful failover (SENTINEL FAILOVER) the old
# master stays writable until the Sentinels demote it, about 10 s later (measured, S3), and
# every write sent there meanwhile is lost.
_MASTER_CHECK_INTERVAL = 0.5


_BLOCKING_DISCONNECT_TAKES_ARGS = (
    "inuse_connections" in inspect.signature(redis.BlockingConnectionPool.disconnect).parameters
)


class BlockingSentinelPool(redis.sentinel.SentinelConnectionPool, redis.BlockingConnectionPool):
    """The Sentinel master's pool, waiting for a free connection like `connect`'s pool,
    re-checking the master every `_MASTER_CHECK_INTERVAL` (connections to a former master are
    closed: idle ones at once, busy ones when released). It owns the Sentinel clients too
    (closing the client closes their connections)."""

    _next_check = 0.0

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + _MASTER_CHECK_INTERVAL
            # A Sentinel that cannot answer now changes nothing: the connections stay.
            with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                self.get_master_address()  # type: ignore[no-untyped-call]
        return super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]

    def disconnect(self, *args: Any, **kwargs: Any) -> None:
        if _BLOCKING_DISCONNECT_TAKES_ARGS:
            super().disconnect(*args, **kwargs)
        else:  # redis-py 6.0: the Sentinel pool passes inuse_connections, the blocking one
            super().disconnect()  # takes none (and closes every connection)
        for sentinel in self.sentinel_manager.sentinels:
            sentinel.close()


_T = TypeVar("_T")


class Handover(Generic[_T]):
    """Items (pooled connections, turns) handed to the asyncio tasks waiting for one, first
    come, first served, so a stream of newcomers cannot starve a waiter. It belongs to no
    event loop: a store may serve several, one after the other."""

    __slots__ = ("_put_back", "_waiters")

    def __init__(self, put_back: Callable[[_T], None]) -> None:
        self._put_back = put_back  # where an item goes when no task waits for it
        self._waiters: collections.deque[asyncio.Future[_T]] = collections.deque()

    @property
    def waiting(self) -> bool:
        """True while a task waits."""
        return bool(self._waiters)

    async def wait(self, timeout: float) -> _T:
        """The next item given to this task; `asyncio.TimeoutError` after `timeout` s."""
        waiter: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            # shield: a timeout must not cancel a hand-over that is happening right now
            return await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except asyncio.TimeoutError:  # not TimeoutError on 3.10
            if waiter.done():
                return waiter.result()  # handed over as the wait ran out
            waiter.cancel()
            raise
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.give(waiter.result())  # handed to a task cancelled meanwhile: pass it on
            waiter.cancel()
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def give(self, item: _T) -> None:
        """Hand `item` to the oldest waiting task, else put it back."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return
        self._put_back(item)


class WaitingPool(redis.asyncio.ConnectionPool):
    """The asyncio connection pool of `connect_async`: lean, and waiting when exhausted.

    - When all `max_connections` are in use, a command waits up to `timeout` seconds for one
      to be released instead of failing at once (redis-py's asyncio `BlockingConnectionPool`
      does that too, but its condition and timeout cost ~45 us on every command, measured).
      Waiters are served first come, first served: a released connection is handed to the
      oldest one directly, so a stream of new commands cannot starve it.
    - Taking and returning a connection skips redis-py's lock (asyncio runs one task at a time
      and these steps do not await in between) and its metrics hooks: ~35 us less per
      command, measured (`bench/`). The connection checks (`ensure_connection`) and the
      re-authentication on release are kept. Should redis-py rename the attributes used, the
      pool is its parent (no waiting).
    """

    def __init__(self, *args: Any, timeout: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._wait = timeout
        self._handover: Handover[Any] = Handover(self._put_back)
        self._lean = hasattr(self, "_in_use_connections") and hasattr(
            self, "_available_connections"
        )
        # redis-py 6.0's connections have no reconnect flag (maintenance notifications).
        self._flagged = hasattr(redis.asyncio.Connection, "should_reconnect")

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if not self._lean:
            return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        try:
            connection = self.get_available_connection()  # type: ignore[no-untyped-call]
        except MaxConnectionsError:
            try:
                connection = await self._handover.wait(self._wait)
            except asyncio.TimeoutError:
                raise MaxConnectionsError("Too many connections") from None
        try:
            await self.ensure_connection(connection)
        except BaseException:
            await self.release(connection)
            raise
        return connection

    async def release(self, connection: Any) -> None:
        if not self._lean:
            await super().release(connection)
            return
        if self._flagged and connection.should_reconnect():
            await connection.disconnect()
        await connection.re_auth()  # what redis-py's release event does
        self._handover.give(connection)  # stays in use when a waiter takes it

    def _put_back(self, connection: Any) -> None:
        self._in_use_connections.remove(connection)
        self._available_connections.append(connection)


class SentinelWaitingPool(redis.asyncio.sentinel.SentinelConnectionPool, WaitingPool):
    """The asyncio Sentinel master's pool: `WaitingPool`'s waiting, Sentinel's discovery,
    re-checked every `_MASTER_CHECK_INTERVAL` as in the sync pool. It owns the Sentinel
    clients too (closing the client closes their connections)."""

    _next_check = 0.0

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + _MASTER_CHECK_INTERVAL
            with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                await self.get_master_address()  # type: ignore[no-untyped-call]
        return await super().get_connection(*args, **kwargs)

    async def release(self, connection: Any) -> None:
        address = (getattr(connection, "host", None), getattr(connection, "port", None))
        if self.master_address is not None and address != tuple(self.master_address):
            await connection.disconnect()  # opened to a former master
        await super().release(connection)

    async def disconnect(self, inuse_connections: bool = True) -> None:
        await super().disconnect(inuse_connections)
        for sentinel in self.sentinel_manager.sentinels:
            await sentinel.aclose()
