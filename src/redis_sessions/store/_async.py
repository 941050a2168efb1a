"""`AsyncRedisStore`: the flows of `_layouts`, run on a `redis.asyncio.Redis` client.

The sync store (`_sync.py`) is generated from the asyncio one (`_async.py`) by
`scripts/unasync.py`: edit `_async.py`, then run the script (``make lint`` checks it was).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TypeVar

import redis.asyncio
import redis.asyncio.cluster
from redis.exceptions import (
    MaxConnectionsError,
    NoScriptError,
    RedisClusterException,
    RedisError,
)

from .._connect import AsyncClient, ConnectOptions, connect_async
from .._errors import StoreUnavailableError
from .._plans import DONE, Committed, Load, Loaded, Plan, Touch
from ._base import StoreBase, TaskGate, cluster_ready_async, durable_reply, now_ms
from ._commands import Batch, Call, Command, Durable, Flow, Script, Sleep
from ._health import Health
from ._listing import Dedup, SessionInfo

__all__ = ["AsyncRedisStore", "AsyncRunner"]

_POLL = 0.002  # seconds between looks for a free Cluster connection

_T = TypeVar("_T")


class AsyncRunner:
    """Runs flows on a `redis.asyncio.Redis`-compatible client; translates errors once.

    Attributes:
        on_execute: called with each command before it is sent, one call per round trip (a
            command, a script or a pipeline); None (the default) costs nothing. Tests count
            round trips with it.
    """

    __slots__ = ("client", "connect_later", "gate", "health", "on_execute", "pool_wait")

    def __init__(
        self,
        client: Any,
        health: Health,
        pool_wait: float = 0.0,
        pool_limit: int | None = None,
        connect_later: Callable[[], Any] | None = None,
    ) -> None:
        self.client = client  # None until `connect_later` succeeds
        self.connect_later = connect_later
        self.health = health
        self.pool_wait = pool_wait
        # Only with a Cluster client: no more commands in flight than a node pool has
        # connections.
        self.gate = TaskGate(pool_limit, pool_wait) if pool_limit else None
        self.on_execute: Callable[[Command], None] | None = None

    async def run(self, flow: Flow[_T]) -> _T:
        """Drive `flow` to completion, one round trip per yielded command."""
        try:
            command = next(flow)
        except StopIteration as done:  # nothing to do (e.g. destroy of no handles)
            result: _T = done.value
            return result
        while True:
            reply = await self.execute(command)
            try:
                command = flow.send(reply)
            except StopIteration as done:
                result = done.value
                return result

    async def execute(self, command: Command) -> Any:
        """Run one command; unavailability becomes `StoreUnavailableError`."""
        if self.on_execute is not None:
            self.on_execute(command)
        gate = self.gate
        if gate is None:
            return await self._execute(command)
        if not await gate.acquire():
            raise self.health.failed(MaxConnectionsError("no free connection in time"))
        try:
            return await self._execute(command, cluster=True)
        finally:
            gate.release()

    async def _execute(self, command: Command, cluster: bool = False) -> Any:
        waits = int(self.pool_wait / _POLL)
        while True:
            try:
                if cluster:
                    await self.ready()
                reply = await self._dispatch(command)
                break
            except MaxConnectionsError as exc:
                # A Cluster client's per-node pool fails at once when all its connections
                # are busy (the gate keeps this store's own commands below that; the client
                # may be shared): wait here for one instead (up to `pool_wait`).
                if waits <= 0:
                    raise self.health.failed(exc) from None
                waits -= 1
                await asyncio.sleep(_POLL)
            except (RedisError, RedisClusterException, OSError) as exc:
                # RedisClusterException (no node reachable) is not a RedisError
                raise self.health.failed(exc) from None
        self.health.ok(command.writes)
        return reply

    async def ready(self) -> bool:
        """Make the Cluster client ready for a command: build it if no node answered when the
        store was made, read its slot map if it has none. True when the map was just read."""
        if self.client is None:
            assert self.connect_later is not None
            self.client = self.connect_later()
            return True
        return await cluster_ready_async(self.client)

    async def _dispatch(self, command: Command) -> Any:
        client = self.client
        match command:
            case Script():
                args = (len(command.keys), *command.keys, *command.args)
                try:
                    return await client.execute_command("EVALSHA", command.sha, *args)
                except NoScriptError:
                    return await client.execute_command("EVAL", command.source, *args)
            case Call(node=None):
                return await client.execute_command(*command.args)
            case Call():
                return await client.execute_command(*command.args, target_nodes=command.node)
            case Durable():
                return await self._durable(command)
            case Sleep():
                return await asyncio.sleep(command.seconds)
            case Batch():
                # Errors of single commands come back as values; connection errors still raise.
                pipe = client.pipeline(transaction=False)
                for call in command.calls:
                    pipe.execute_command(*call.args)
                return await pipe.execute(raise_on_error=command.strict)

    async def _durable(self, command: Durable) -> Any:
        # The write and WAIT in one pipeline: one connection, so WAIT counts this write.
        inner = command.inner
        for loaded in (True, False):
            pipe = self.client.pipeline(transaction=False)
            if not isinstance(inner, Script):
                pipe.execute_command(*inner.args)
            elif loaded:
                pipe.execute_command(
                    "EVALSHA", inner.sha, len(inner.keys), *inner.keys, *inner.args
                )
            else:
                pipe.execute_command(
                    "EVAL", inner.source, len(inner.keys), *inner.keys, *inner.args
                )
            pipe.execute_command(*command.wait_args)
            reply, acks = await pipe.execute(raise_on_error=False)
            if not isinstance(reply, NoScriptError):
                break
        return durable_reply(command, reply, acks)


class AsyncRedisStore(StoreBase):
    """Sessions in Redis, for asyncio code (ASGI, Starlette, FastAPI).

    Args:
        client: a `redis.asyncio.Redis` (or compatible) client, ``decode_responses=False``;
            when omitted, one is built from `url` by `redis_sessions.connect_async` (explicit
            timeouts and retries), `url` defaulting to ``REDIS_URL``.
        url: Redis URL when no client is given (any topology: see `parse_target`).
        cluster: with `url`, the URL names Cluster nodes (as ``redis+cluster://`` does).
        connect_options: with `url`, the client's timeouts, retries and pool
            (`ConnectOptions`; default ``ConnectOptions()``).
        client_kwargs: with `url`, more keyword arguments for the client's connections
            (e.g. ``ssl_ca_certs``).
        **options: the `StoreBase` options (prefix, ttl, serializer, max_size, ...).

    Every method costs the round trips it names; all raise `StoreUnavailableError` when Redis
    cannot serve.
    """

    def __init__(
        self,
        client: AsyncClient | None = None,
        *,
        url: str | None = None,
        cluster: bool = False,
        connect_options: ConnectOptions | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        later = None
        if client is None:
            build = functools.partial(
                connect_async, url, connect_options, cluster=cluster, **(client_kwargs or {})
            )
            try:
                client = build()
            except RedisClusterException:
                # No Cluster node answers yet (the app may start before Redis does): the store
                # answers unavailable and builds the client once one answers.
                later = build
        is_cluster = later is not None or isinstance(client, redis.asyncio.cluster.RedisCluster)
        self._bind(client, cluster=is_cluster, connect_options=connect_options)
        self._runner = AsyncRunner(client, self.health, self.pool_wait, self.pool_limit, later)

    @property
    def client(self) -> AsyncClient | None:
        """The redis-py client (built at the first command when no Cluster node answered
        when the store was made; None until then)."""
        client: AsyncClient | None = self._runner.client
        return client

    async def load(self, spec: Load) -> Loaded | None:
        """Read a session, refreshing its TTL when due (1 round trip)."""
        return await self._runner.run(self.layout.load(spec))

    async def commit(self, plan: Plan) -> Committed:
        """Run an engine plan (1 round trip, 0 for None); not applied if the session was gone."""
        match plan:
            case None:
                return DONE
            case Touch(best_effort=True):
                try:
                    return await self._runner.run(self.layout.commit(plan))
                except StoreUnavailableError:
                    return DONE  # the read was served; the refresh is retried by a later request
            case _:
                return await self._runner.run(self.layout.commit(plan))

    async def get(self, handle: str) -> dict[str, Any] | None:
        """The data of a session, or None if missing or unreadable (1 round trip)."""
        return await self._runner.run(self.layout.get(handle))

    async def set(self, handle: str, data: Mapping[str, Any], ttl: float | None = None) -> bool:
        """Replace a session's data with a TTL (default `ttl`); <= 0 deletes (1 round trip)."""
        flow = self.layout.set(handle, data, self._ttl_ms(data, ttl), now_ms())
        return await self._runner.run(flow)

    async def destroy(self, *handles: str) -> int:
        """Delete sessions; returns how many existed (1 round trip)."""
        return await self._runner.run(self.layout.destroy(*handles))

    async def touch(self, handle: str, ttl: float | None = None) -> bool:
        """Reset a session's TTL; False if it does not exist (1 round trip)."""
        flow = self.layout.touch(handle, self._ttl_ms({}, ttl))
        return await self._runner.run(flow)

    async def ids(self) -> AsyncIterator[str]:
        """Every session handle under the prefix, once each (SCAN pages, never KEYS)."""
        dedup = Dedup()
        async for handles in self._pages():
            for handle in dedup.fresh(handles):
                yield handle

    async def all(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Every readable session as (handle, data), one round trip per SCAN page more."""
        dedup = Dedup()
        async for handles in self._pages():
            found = await self._runner.run(self.layout.get_many(dedup.fresh(handles)))
            for item in found.items():
                yield item

    async def length(self) -> int:
        """How many sessions exist (a full SCAN)."""
        return sum([1 async for _ in self.ids()])

    async def clear(self, progress: Callable[[int], None] | None = None) -> int:
        """Delete every session under the prefix, page by page (SCAN + UNLINK); returns how
        many. `progress` is called with the running count after each page.

        A key SCAN returns twice is simply not counted twice (UNLINK counts what existed), so
        nothing is remembered between pages: memory stays flat for any number of sessions."""
        deleted = 0
        async for handles in self._pages():
            deleted += await self._runner.run(self.layout.destroy(*handles))
            if progress is not None:
                progress(deleted)
        return deleted

    async def sessions(
        self, match: str = "", user_field: str = "user"
    ) -> AsyncIterator[SessionInfo]:
        """Every session's metadata (`SessionInfo`), page by page: 2 round trips per SCAN page,
        never the whole keyspace in memory. `match` keeps handles starting with it."""
        dedup = Dedup()
        async for handles in self._pages(match):
            infos = await self._runner.run(self.layout.describe(dedup.fresh(handles), user_field))
            for info in infos:
                yield info

    async def _pages(self, match: str = "") -> AsyncIterator[list[str]]:
        # Handles page by page; SCAN is per node, so a Cluster is listed primary by primary
        # (replicas hold the same keys).
        for node in await self._nodes():
            cursor = 0
            while True:
                cursor, handles = await self._runner.run(self.layout.scan_page(cursor, match, node))
                yield handles
                if cursor == 0:
                    break

    async def _nodes(self) -> list[Any]:
        if not self.layout.cluster:
            return [None]
        try:
            # The primaries as they are now: after a failover the client's cached slot map
            # still names the dead one until a command to a key finds out.
            if not await self._runner.ready():
                await self.client.nodes_manager.initialize()  # type: ignore[union-attr]
        except (RedisError, RedisClusterException) as exc:
            raise self.health.failed(exc) from None
        primaries: list[Any] = self.client.get_primaries()  # type: ignore[union-attr]
        return primaries

    async def describe(self, handle: str, user_field: str = "user") -> SessionInfo | None:
        """One session's metadata, or None if it does not exist (1 round trip)."""
        infos = await self._runner.run(self.layout.describe([handle], user_field))
        return infos[0] if infos else None

    async def aclose(self) -> None:
        """Close the client's connections."""
        if self._runner.client is not None:
            await self._runner.client.aclose()
