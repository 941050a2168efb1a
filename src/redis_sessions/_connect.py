"""Building redis-py clients with explicit timeouts and retries.

redis-py changed its defaults in 2026 (socket timeouts from "block forever" to 5 s, the retry
policy from 3 to 10 attempts), so nothing here relies on them: every client gets explicit
socket timeouts, a bounded `Retry` with jittered backoff and a health check interval. With the
defaults a call that cannot be served fails within about 2 s: two attempts of 0.5 s for the
health-check PING of an idle connection plus two of 0.5 s for the command, so an adapter answers
503 within 3 s.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import EqualJitterBackoff, NoBackoff
from redis.retry import Retry

from ._errors import ConfigError
from ._loops import loop_bound
from ._pools import BlockingSentinelPool, SentinelWaitingPool, WaitingPool
from ._urls import Target, parse_target, url_from_vcap

__all__ = [
    "DEFAULT_URL",
    "ConnectOptions",
    "bind_to_loops",
    "cluster_limits",
    "connect",
    "connect_async",
]

DEFAULT_URL = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True, kw_only=True, slots=True)
class ConnectOptions:
    """Connection settings, all explicit.

    Attributes:
        socket_timeout: seconds to wait for a reply before the call fails (default 0.5).
        socket_connect_timeout: seconds to wait for a TCP/unix connection (default 0.5).
        retries: how many times a command that failed with a connection error or timeout is
            re-sent (default 1). Our writes are idempotent, so a re-send is safe.
        backoff_base, backoff_cap: jittered exponential backoff between attempts, seconds.
        health_check_interval: PING a connection idle longer than this before reuse, so a
            socket left half-dead by a Redis restart fails fast (default 10).
        max_connections: connection pool size (default 64).
        pool_timeout: seconds a command waits for a free pooled connection when all
            `max_connections` are busy (default 1.0; a burst of concurrent requests queues
            instead of failing), after which it fails as unavailable (503).
        sentinel_timeout: connect and reply timeout of each Sentinel query, seconds (default
            0.2): a dead Sentinel costs at most this before the next one is asked.
        protocol: the wire protocol, 2 (RESP2, default) or 3 (RESP3). Pinned rather than left
            to redis-py, whose default became RESP3 in 8.0: the reply shapes the store reads
            stay the ones it is tested with on every redis-py, both are equally fast here
            (measured), and RESP3's push frames buy nothing to a pooled client (a client-side
            cache's invalidations belong on one connection of their own, ``CLIENT TRACKING
            ... REDIRECT``). The store passes its contract suite under both.
    """

    socket_timeout: float = 0.5
    socket_connect_timeout: float = 0.5
    retries: int = 1
    backoff_base: float = 0.02
    backoff_cap: float = 0.25
    health_check_interval: float = 10.0
    max_connections: int | None = 64
    pool_timeout: float = 1.0
    sentinel_timeout: float = 0.2
    protocol: int = 2

    def __post_init__(self) -> None:
        if self.protocol not in (2, 3) or isinstance(self.protocol, bool):
            raise ConfigError(f"protocol: must be 2 (RESP2) or 3 (RESP3), got {self.protocol!r}")

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``from_url``, without the retry policy."""
        return {
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.socket_connect_timeout,
            "health_check_interval": self.health_check_interval,
            "max_connections": self.max_connections,
            "timeout": self.pool_timeout,  # the blocking pool's wait for a free connection
            "client_name": "redis-sessions",
            "protocol": self.protocol,  # pinned: redis-py 8 changed its default to RESP3
            "decode_responses": False,  # values are bytes: msgpack and exact size accounting
        }

    def backoff(self) -> EqualJitterBackoff:
        """The backoff between retries."""
        return EqualJitterBackoff(cap=self.backoff_cap, base=self.backoff_base)


def _resolve_url(url: str | None) -> str:
    return (
        url
        or os.environ.get("REDIS_URL")
        or url_from_vcap(os.environ.get("VCAP_SERVICES"))
        or DEFAULT_URL
    )


Client = redis.Redis | redis.cluster.RedisCluster
AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster


def connect(
    url: str | None = None,
    options: ConnectOptions | None = None,
    *,
    cluster: bool = False,
    **client_kwargs: Any,
) -> Client:
    """A sync client for `url`, defaulting to ``$REDIS_URL``, then a Redis service bound in
    Cloud Foundry's ``$VCAP_SERVICES`` (`url_from_vcap`), then ``redis://127.0.0.1:6379/0``.

    Every topology of `parse_target`: one server (``redis://``, ``rediss://``, ``unix://``;
    user, password and db in the URL) gives a `redis.Redis`; ``redis+sentinel://`` a
    `redis.Redis` on the service's current master, re-discovered through the Sentinels after
    a failover; ``redis+cluster://`` (or `cluster` True) a `redis.cluster.RedisCluster`.
    `client_kwargs` are passed on to the connections (e.g. ``ssl_ca_certs``).
    """
    opts = options or ConnectOptions()
    target = parse_target(_resolve_url(url), cluster)
    kwargs = {**opts.client_kwargs(), **client_kwargs}
    retry = Retry(opts.backoff(), opts.retries)
    if target.kind == "cluster":
        return _remember_limits(
            redis.cluster.RedisCluster(
                startup_nodes=[
                    redis.cluster.ClusterNode(h, p)  # type: ignore[no-untyped-call]
                    for h, p in target.nodes
                ],
                retry=retry,
                **_cluster_kwargs(kwargs, target),
            ),
            kwargs,
        )
    if target.kind == "sentinel":
        sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            list(target.nodes),
            sentinel_kwargs=_sentinel_kwargs(opts, target, Retry(NoBackoff(), 0)),
        )
        return sentinel.master_for(  # type: ignore[no-any-return,no-untyped-call]
            target.service,
            redis_class=redis.Redis,
            connection_pool_class=BlockingSentinelPool,
            retry=retry,
            **{**(target.kwargs or {}), **kwargs},
        )
    # A blocking pool: with every connection busy, a command waits (up to pool_timeout)
    # rather than failing at once with "Too many connections".
    pool = redis.BlockingConnectionPool.from_url(target.url or "", retry=retry, **kwargs)
    return redis.Redis.from_pool(pool)  # the client owns the pool: close() closes it


def connect_async(
    url: str | None = None,
    options: ConnectOptions | None = None,
    *,
    cluster: bool = False,
    **client_kwargs: Any,
) -> AsyncClient:
    """The asyncio twin of `connect` (a `redis.asyncio.Redis`, or a
    `redis.asyncio.cluster.RedisCluster` for a Cluster)."""
    opts = options or ConnectOptions()
    target = parse_target(_resolve_url(url), cluster)
    kwargs = {**opts.client_kwargs(), **client_kwargs}
    retry = AsyncRetry(opts.backoff(), opts.retries)
    if target.kind == "cluster":
        # MOVED replies patch the slot map one slot at a time, without redis-py's re-read on
        # every 5th: the asyncio client does that by closing every connection, in-flight
        # commands included (a 600-slot reshard under 64 writing tasks: ~1.5x the saves per
        # second without it, bench/cluster_moved.py). A dead node still triggers a re-read.
        return bind_to_loops(
            _remember_limits(
                redis.asyncio.cluster.RedisCluster(
                    startup_nodes=[
                        redis.asyncio.cluster.ClusterNode(h, p) for h, p in target.nodes
                    ],
                    retry=retry,
                    **{"reinitialize_steps": 0, **_cluster_kwargs(kwargs, target)},
                ),
                kwargs,
            )
        )
    if target.kind == "sentinel":
        sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            list(target.nodes),
            sentinel_kwargs=_sentinel_kwargs(opts, target, AsyncRetry(NoBackoff(), 0)),
        )
        return bind_to_loops(  # type: ignore[no-any-return]
            sentinel.master_for(
                target.service,
                redis_class=redis.asyncio.Redis,
                connection_pool_class=SentinelWaitingPool,
                retry=retry,
                **{**(target.kwargs or {}), **kwargs},
            )
        )
    pool = WaitingPool.from_url(target.url or "", retry=retry, **kwargs)
    return bind_to_loops(redis.asyncio.Redis.from_pool(pool))


_A = TypeVar("_A", bound=AsyncClient)


def bind_to_loops(client: _A) -> _A:
    """Make the connections an asyncio `client` opens from now on belong to the event loop
    that opens them (see `redis_sessions._loops`): a call from another loop reconnects on it,
    a closed loop's connections are closed without it. Works on a `redis.asyncio.Redis` (its
    pool, and a Sentinel pool's Sentinel clients) and a `redis.asyncio.cluster.RedisCluster`
    (every node); returns `client`. `connect_async` and `AsyncRedisStore` call it."""
    if isinstance(client, redis.asyncio.cluster.RedisCluster):
        # Nodes found later are built from these kwargs (the dict the nodes manager holds).
        kwargs = client.nodes_manager.connection_kwargs
        kwargs["connection_class"] = loop_bound(
            kwargs.get("connection_class", redis.asyncio.Connection)
        )
        manager = client.nodes_manager
        for node in [*manager.startup_nodes.values(), *manager.nodes_cache.values()]:
            node.connection_class = loop_bound(node.connection_class)
        return client
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        pool.connection_class = loop_bound(pool.connection_class)
        sentinels = getattr(getattr(pool, "sentinel_manager", None), "sentinels", ())
        for sentinel in sentinels:
            # Our lean pool for the Sentinel clients too: redis-py 6's pool takes an
            # asyncio.Lock per connection, and a lock once waited on is bound to that loop.
            old = sentinel.connection_pool
            sentinel.connection_pool = WaitingPool(
                connection_class=loop_bound(old.connection_class),
                max_connections=old.max_connections,
                **old.connection_kwargs,
            )
    return client


def _sentinel_kwargs(
    opts: ConnectOptions, target: Target, retry: Retry | AsyncRetry
) -> dict[str, Any]:
    # Short timeouts of their own and no retry: a dead Sentinel must not eat the request's
    # budget, the next Sentinel is the retry (by default redis-py would give the Sentinels the
    # data connections' socket options, and its own client default of 10 retries).
    return {
        "socket_timeout": opts.sentinel_timeout,
        "socket_connect_timeout": opts.sentinel_timeout,
        "retry": retry,
        **(target.sentinel_kwargs or {}),
    }


# What each Cluster client `connect` built was asked for: connections per node and the wait
# for a free one (its node pools do not wait, and the client keeps no record of the wait).
_CLUSTER_LIMITS: weakref.WeakKeyDictionary[Any, tuple[int | None, float]] = (
    weakref.WeakKeyDictionary()
)


def cluster_limits(client: Any) -> tuple[int | None, float]:
    """A Cluster `client`'s connections per node (None: no limit known) and the seconds a
    command may wait for a free one: what `connect` was asked for, else what the client
    says and the default wait."""
    known = _CLUSTER_LIMITS.get(client)
    if known is not None:
        return known
    manager = getattr(client, "nodes_manager", None)  # sync clients keep the kwargs there
    kwargs = (
        getattr(manager, "connection_kwargs", None)
        or getattr(client, "connection_kwargs", None)
        or {}
    )
    limit = kwargs.get("max_connections")
    return (limit if isinstance(limit, int) and limit > 0 else None, ConnectOptions().pool_timeout)


_C = TypeVar("_C")


def _remember_limits(client: _C, kwargs: dict[str, Any]) -> _C:
    _CLUSTER_LIMITS[client] = (kwargs.get("max_connections"), kwargs["timeout"])
    return client


def _cluster_kwargs(kwargs: dict[str, Any], target: Target) -> dict[str, Any]:
    merged = {**(target.kwargs or {}), **kwargs}
    # redis-py's Cluster clients have no waiting pool per node (a full one fails at once with
    # MaxConnectionsError): the store's runner waits instead (`ThreadGate`, `cluster_limits`).
    merged.pop("timeout", None)
    if merged.get("max_connections") is None:
        merged.pop("max_connections", None)
    return merged
