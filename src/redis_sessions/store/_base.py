"""What every store shares: options, the layout, outage tracking, TTL computation."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from typing import Any

import redis.asyncio
import redis.asyncio.cluster
from redis.exceptions import ResponseError

from .._config import _positive
from .._connect import ConnectOptions, bind_to_loops, cluster_limits
from .._engine import now_ms
from .._errors import ConfigError
from .._pools import Handover
from .._serializers import Serializer, default_serializer
from ._commands import Durable
from ._health import Health
from ._layouts import HashLayout

__all__ = [
    "StoreBase",
    "TaskGate",
    "ThreadGate",
    "cluster_ready",
    "cluster_ready_async",
    "durable_reply",
    "now_ms",
]

TTL = float | Callable[[Mapping[str, Any]], float]


# The turns of a Cluster store whose client gives no connection limit.
_UNBOUNDED = 1 << 30


def cluster_ready(client: Any) -> bool:
    """Nothing to do (False): a sync Cluster client reads the slot map in its constructor."""
    return False


async def cluster_ready_async(client: Any) -> bool:
    """Have an asyncio Cluster `client` read the slot map before a command when it has none:
    at first use, and after redis-py closed it (on every 5th MOVED by default, or a pipeline's
    connection error). Commands of other tasks sent while it reads are routed without it
    (measured: MOVED replies for a burst of first commands, then the client closing every
    connection, in-flight commands included, on the 5th); waiting for it here avoids that.
    True when the map was read by this call."""
    if getattr(client, "_initialize", False):
        await client.initialize()
        return True
    return False


def durable_reply(command: Durable, reply: Any, acks: Any) -> Any:
    """The write's reply of a `Durable` pipeline (the write, then WAIT or WAITAOF): an error
    reply of either is raised, and so are too few acknowledgements, as the NOREPLICAS error
    reply Redis gives a write it could not replicate (`_health` classifies both alike)."""
    for result in (reply, acks):
        if isinstance(result, Exception):
            raise result
    shortfall = command.shortfall(acks)
    if shortfall is not None:
        raise ResponseError(shortfall)
    return reply


class ThreadGate:
    """At most `limit` commands of a Cluster store in flight across threads; the others wait
    up to `wait` seconds for their turn.

    redis-py's Cluster clients have no waiting pool per node: a command that finds its node's
    connections all busy fails with MaxConnectionsError, and inside a pipeline that error is
    taken for a failed node (the sync client re-reads the slot map, the asyncio one closes
    every connection of the client, measured). Keeping the commands in flight to the pool size
    means no node pool runs out.
    """

    __slots__ = ("_slots", "_wait")

    def __init__(self, limit: int, wait: float) -> None:
        self._slots = threading.BoundedSemaphore(limit)
        self._wait = wait

    def acquire(self) -> bool:
        """Take a turn; False when none came within the wait."""
        return self._slots.acquire(timeout=self._wait)

    def release(self) -> None:
        """End a turn taken by `acquire`."""
        self._slots.release()


class TaskGate:
    """`ThreadGate` for asyncio tasks: turns are handed first come, first served (`Handover`),
    and the gate belongs to no event loop (a store may serve several, one after the other)."""

    __slots__ = ("_free", "_handover", "_wait")

    def __init__(self, limit: int, wait: float) -> None:
        self._free = limit
        self._handover: Handover[None] = Handover(self._put_back)
        self._wait = wait

    async def acquire(self) -> bool:
        """Take a turn; False when none came within the wait."""
        if self._free > 0 and not self._handover.waiting:
            self._free -= 1
            return True
        try:
            await self._handover.wait(self._wait)
        except asyncio.TimeoutError:  # not TimeoutError on 3.10
            return False
        return True

    def release(self) -> None:
        """End a turn: the oldest waiter gets it, else it is free again."""
        self._handover.give(None)

    def _put_back(self, _: None) -> None:
        self._free += 1


class StoreBase:
    """Options shared by the Redis stores (connect-redis's names).

    Args:
        prefix: key prefix (default ``"sess:"``).
        ttl: TTL in seconds (1 ms to 10 years) for `set` / `touch`, or a callable of the
            session data returning seconds (default 86400). Sessions written by the middleware
            use its `idle_timeout` instead.
        disable_ttl: never set a TTL (default False). The idle and absolute timeouts are then
            enforced when a session is read, from the last access (``$a``, written by saves
            and the due refresh) and the creation time: an expired session reads as missing
            and is deleted. An abandoned session stays in Redis until something reads it
            (without a TTL Redis never reclaims it): prefer the TTLs, or delete stale sessions
            with a periodic job.
        serializer: value serializer (default JSON, with orjson when installed).
        max_size: limit in bytes of one serialized session (default 64 KiB); a bigger session
            raises `SessionTooLargeError` and writes nothing, a bigger stored one reads as
            missing.
        scan_count: COUNT hint of each SCAN call when listing (default 100).
        wait_replicas: after every save (and destroy), wait until this many replicas have it
            (``WAIT``), or fail it as unavailable (503); 0 (default) does not wait. With
            Sentinel, 2 of 2 replicas means a failover cannot lose an acknowledged save.
        wait_timeout: seconds WAIT waits for the replicas (default 0.1).
        wait_aof: also wait until the primary's AOF has it on disk (``WAITAOF``, Redis 7.2+ /
            Valkey, needs ``appendonly yes``); with ``wait_replicas=0`` only that.
    """

    def __init__(
        self,
        *,
        prefix: str = "sess:",
        ttl: TTL = 86400,
        disable_ttl: bool = False,
        serializer: Serializer | None = None,
        max_size: int = 64 * 1024,
        scan_count: int = 100,
        wait_replicas: int = 0,
        wait_timeout: float = 0.1,
        wait_aof: bool = False,
    ) -> None:
        if not isinstance(max_size, int) or max_size <= 0:
            raise ConfigError(f"max_size: must be a positive int of bytes, got {max_size!r}")
        if not isinstance(scan_count, int) or scan_count <= 0:
            raise ConfigError(f"scan_count: must be a positive int, got {scan_count!r}")
        if not callable(ttl):
            _positive("ttl", ttl)
        self.ttl = ttl
        self.serializer = serializer or default_serializer()
        self.max_size = max_size
        self.layout = HashLayout(
            prefix=prefix,
            serializer=self.serializer,
            max_size=max_size,
            scan_count=scan_count,
            disable_ttl=disable_ttl,
        )
        self.health = Health(type(self).__name__)
        if (
            isinstance(wait_replicas, bool)
            or not isinstance(wait_replicas, int)
            or (wait_replicas < 0)
        ):
            raise ConfigError(f"wait_replicas: must be an int >= 0, got {wait_replicas!r}")
        if isinstance(wait_timeout, bool) or not wait_timeout > 0:
            raise ConfigError(f"wait_timeout: must be positive seconds, got {wait_timeout!r}")
        if wait_replicas or wait_aof:
            self.layout.wait = (wait_replicas, max(1, round(wait_timeout * 1000)), wait_aof)

    def _bind(
        self, client: Any, *, cluster: bool, connect_options: ConnectOptions | None = None
    ) -> None:
        # What the client is decides how commands are shaped (see HashLayout.cluster).
        self.layout.cluster = cluster
        if isinstance(client, (redis.asyncio.Redis, redis.asyncio.cluster.RedisCluster)):
            bind_to_loops(client)  # a client of the app's own: usable from any event loop
        self.pool_limit: int | None = None
        self.pool_wait = 0.0
        if not cluster:
            return
        if self.layout.wait is not None:
            raise ConfigError(
                "wait_replicas / wait_aof: not available with a Cluster client "
                "(WAIT must follow the write on the same node connection)"
            )
        # A Cluster client's node pools do not wait for a free connection: the runner does
        # (see ThreadGate).
        if client is None:  # to be built by `connect` with these options
            opts = connect_options or ConnectOptions()
            limit, self.pool_wait = opts.max_connections, opts.pool_timeout
        else:
            limit, self.pool_wait = cluster_limits(client)
        self.pool_limit = _UNBOUNDED if limit is None else limit
        self.health.settle = 0.5  # one node down, the others serving: one outage

    @property
    def prefix(self) -> str:
        """The key prefix."""
        return self.layout.prefix

    def _ttl_ms(self, data: Mapping[str, Any], ttl: float | None) -> int:
        if ttl is None:
            ttl = self.ttl(data) if callable(self.ttl) else self.ttl
        return int(ttl * 1000)
