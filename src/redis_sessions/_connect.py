"""Building redis-py clients with explicit timeouts and retries.

redis-py changed its defaults in 2026 (socket timeouts from "block forever" to 5 s, the retry
policy from 3 to 10 attempts), so nothing here relies on them: every client gets explicit
socket timeouts, a bounded `Retry` with jittered backoff and a health check interval. With the
defaults a call that cannot be served fails within about 2 s: two attempts of 0.5 s for the
health-check PING of an idle connection plus two of 0.5 s for the command, so an adapter answers
503 within 3 s.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import json
import os
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote, unquote

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import EqualJitterBackoff, NoBackoff
from redis.connection import parse_url
from redis.exceptions import MaxConnectionsError
from redis.retry import Retry

from ._errors import ConfigError
from ._loops import loop_bound
from ._redact import redact_url as _redacted

__all__ = [
    "DEFAULT_URL",
    "ConnectOptions",
    "Target",
    "bind_to_loops",
    "connect",
    "connect_async",
    "parse_target",
    "url_from_vcap",
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


def url_from_vcap(vcap: str | None) -> str | None:
    """The URL of the first Redis/Valkey service bound to a Cloud Foundry app, from the
    ``VCAP_SERVICES`` JSON, or None.

    A service counts when its label, name or tags mention redis or valkey. Its credentials'
    ``uri`` or ``url`` is used as is; else one is built from ``host``, ``port`` (``tls_port``
    first, as ``rediss://``) and ``password``. Malformed JSON gives None, never an error.
    """
    if not vcap:
        return None
    try:
        services = json.loads(vcap)
    except ValueError:
        return None
    if not isinstance(services, dict):
        return None
    for instances in services.values():
        for service in instances if isinstance(instances, list) else ():
            if not isinstance(service, dict):
                continue
            words = [service.get("label"), service.get("name"), *(service.get("tags") or [])]
            if not any(
                isinstance(w, str) and ("redis" in w.lower() or "valkey" in w.lower())
                for w in words
            ):
                continue
            creds = service.get("credentials")
            if not isinstance(creds, dict):
                continue
            for field in ("uri", "url"):
                if isinstance(creds.get(field), str) and "://" in creds[field]:
                    return str(creds[field])
            host = creds.get("host") or creds.get("hostname")
            if not isinstance(host, str):
                continue
            tls = creds.get("tls_port")
            scheme, port = ("rediss", tls) if tls else ("redis", creds.get("port", 6379))
            password = creds.get("password")
            auth = f":{quote(str(password), safe='')}@" if password else ""
            return f"{scheme}://{auth}{host}:{port}/0"
    return None


Client = redis.Redis | redis.cluster.RedisCluster
AsyncClient = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster

_SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}
_CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}
# Options of the URL query meant for the Sentinels, not for the data connections.
_SENTINEL_QUERY = ("sentinel_password", "sentinel_username")


@dataclass(frozen=True, slots=True)
class Target:
    """Where a URL points: one server, a Sentinel-managed service or a Cluster.

    Attributes:
        kind: ``"single"``, ``"sentinel"`` or ``"cluster"``.
        url: the URL for a single server (as given), else None.
        nodes: the Sentinels or Cluster startup nodes, as (host, port).
        service: the Sentinel service (master) name; "" otherwise.
        kwargs: connection options for the data servers (user, password, db, TLS).
        sentinel_kwargs: connection options for the Sentinels (their own user and password).
    """

    kind: str
    url: str | None = None
    nodes: tuple[tuple[str, int], ...] = ()
    service: str = ""
    kwargs: dict[str, Any] | None = None
    sentinel_kwargs: dict[str, Any] | None = None


def parse_target(url: str, cluster: bool = False) -> Target:
    """Parse a URL of any topology (raises `ConfigError` on a malformed one).

    - ``redis://``, ``rediss://``, ``unix://``: one server (redis-py's URL syntax);
    - ``redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]``, with
      ``sentinel_password`` / ``sentinel_username`` in the query when the Sentinels require
      their own credentials (the ones before ``@`` are the data servers'); ``rediss+sentinel``
      for TLS to both;
    - ``redis+cluster://[user:password@]host:port[,host:port...]/``: Cluster startup nodes
      (one reachable node is enough); ``rediss+cluster`` for TLS. With ``cluster=True`` a
      ``redis://`` or ``rediss://`` URL (one or several hosts) means a Cluster too.

    Other query options (``ssl_ca_certs``, ``ssl_cert_reqs``, ...) are redis-py's.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(f"not a Redis URL (no scheme): {_redacted(url)}")
    if (
        scheme in _SENTINEL_SCHEMES
        or scheme in _CLUSTER_SCHEMES
        or (cluster and scheme in ("redis", "rediss"))
    ):
        return _parse_multi(scheme, rest, url)
    if scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(
            f"unknown Redis URL scheme {scheme!r}: use redis://, rediss://, "
            "unix://, redis+sentinel:// or redis+cluster://"
        )
    return Target("single", url=url)


def _parse_multi(scheme: str, rest: str, url: str) -> Target:
    tls = _SENTINEL_SCHEMES.get(scheme, _CLUSTER_SCHEMES.get(scheme, scheme == "rediss"))
    netloc, path, query = _split(rest)
    userinfo, _, hosts = netloc.rpartition("@")
    nodes = tuple(_host_port(part, url) for part in hosts.split(",") if part)
    if not nodes:
        raise ConfigError(f"no host in Redis URL: {_redacted(url)}")
    params = [p for p in query.split("&") if p]
    own = {k: v for k, _, v in (p.partition("=") for p in params) if k in _SENTINEL_QUERY}
    rest_query = "&".join(p for p in params if p.partition("=")[0] not in _SENTINEL_QUERY)
    segments = [s for s in path.split("/") if s]
    service, db = "", ""
    if scheme in _SENTINEL_SCHEMES:
        if not segments:
            raise ConfigError(
                f"redis+sentinel:// URL without a service name (…/mymaster/0): {_redacted(url)}"
            )
        service, db = segments[0], (segments[1] if len(segments) > 1 else "")
    elif segments and segments != ["0"]:
        raise ConfigError(f"a Cluster has only database 0: {_redacted(url)}")
    # redis-py parses the credentials and the query (TLS options) of a one-host URL.
    auth = f"{userinfo}@" if userinfo else ""
    one = f"{'rediss' if tls else 'redis'}://{auth}placeholder/{db}" + (
        f"?{rest_query}" if rest_query else ""
    )
    kwargs: dict[str, Any] = parse_url(one)  # type: ignore[no-untyped-call]
    kwargs.pop("host", None)
    kwargs.pop("port", None)
    if kwargs.pop("connection_class", None) is not None or tls:
        kwargs["ssl"] = True
    if scheme not in _SENTINEL_SCHEMES:
        kwargs.pop("db", None)
        return Target("cluster", nodes=nodes, kwargs=kwargs)
    sentinel_kwargs: dict[str, Any] = {
        name.removeprefix("sentinel_"): unquote(value) for name, value in own.items()
    }
    sentinel_kwargs.update({k: v for k, v in kwargs.items() if k.startswith("ssl")})
    return Target(
        "sentinel",
        nodes=nodes,
        service=unquote(service),
        kwargs=kwargs,
        sentinel_kwargs=sentinel_kwargs,
    )


def _split(rest: str) -> tuple[str, str, str]:
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    return netloc, slash + path, query


def _host_port(part: str, url: str) -> tuple[str, int]:
    host, port = part, "6379"
    if part.startswith("["):  # [::1]:26379
        host, _, tail = part[1:].partition("]")
        port = tail.removeprefix(":") or port
    elif ":" in part:
        host, port = part.rsplit(":", 1)
    if not host or not port.isdigit():
        raise ConfigError(f"bad host:port {part!r} in Redis URL: {_redacted(url)}")
    return host, int(port)


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
            connection_pool_class=_BlockingSentinelPool,
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
                connection_pool_class=_SentinelWaitingPool,
                retry=retry,
                **{**(target.kwargs or {}), **kwargs},
            )
        )
    pool = _WaitingPool.from_url(target.url or "", retry=retry, **kwargs)
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
            sentinel.connection_pool = _WaitingPool(
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


# How often a Sentinel pool asks the Sentinels which server is the master, at most. redis-py
# asks only when it opens a connection: after a graceful failover (SENTINEL FAILOVER) the old
# master stays writable until the Sentinels demote it, about 10 s later (measured, S3), and
# every write sent there meanwhile is lost.
_MASTER_CHECK_INTERVAL = 0.5


_BLOCKING_DISCONNECT_TAKES_ARGS = (
    "inuse_connections" in inspect.signature(redis.BlockingConnectionPool.disconnect).parameters
)


class _BlockingSentinelPool(redis.sentinel.SentinelConnectionPool, redis.BlockingConnectionPool):
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


class _WaitingPool(redis.asyncio.ConnectionPool):
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


class _SentinelWaitingPool(redis.asyncio.sentinel.SentinelConnectionPool, _WaitingPool):
    """The asyncio Sentinel master's pool: `_WaitingPool`'s waiting, Sentinel's discovery,
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
