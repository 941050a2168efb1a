"""Helpers of the store tests: a sync-call proxy over every store runner, engine helpers."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import inspect
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.cluster

from redis_sessions import (
    AsyncRedisStore,
    ConnectOptions,
    MemoryStore,
    RedisStore,
    Session,
    SessionConfig,
    connect,
    connect_async,
)
from redis_sessions.acl import acl_rules
from redis_sessions.engine import (
    Committed,
    Incoming,
    Load,
    RequestCycle,
    SessionEngine,
    Write,
    handle_for,
)
from redis_sessions.server import LocalServer
from tests.support.servers import server_version


class StoreProxy:
    """A store seen through the sync interface.

    Attributes:
        kind: "sync", "async" or "memory" (the "acl" runner's stores are "sync").
        inner: the real store object.
        raw: a plain sync client to the same server, as its admin (None for "memory").
        loop: the event loop async calls run on (None unless "async").
    """

    def __init__(
        self, kind: str, inner: Any, raw: redis.Redis | None, loop: asyncio.AbstractEventLoop | None
    ) -> None:
        self.kind = kind
        self.inner = inner
        self.raw = raw
        self.loop = loop

    @property
    def real(self) -> bool:
        """True when the store talks to a real server."""
        return self.raw is not None

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        loop = self.loop
        if loop is None:
            return attr
        if inspect.isasyncgenfunction(attr):

            @functools.wraps(attr)
            def collect(*args: Any, **kwargs: Any) -> list[Any]:
                async def run() -> list[Any]:
                    return [item async for item in attr(*args, **kwargs)]

                return loop.run_until_complete(run())

            return collect
        if inspect.iscoroutinefunction(attr):

            @functools.wraps(attr)
            def call(*args: Any, **kwargs: Any) -> Any:
                return loop.run_until_complete(attr(*args, **kwargs))

            return call
        return attr

    def run(self, awaitable: Any) -> Any:
        """Run an awaitable on this test's loop (async runner only)."""
        assert self.loop is not None
        return self.loop.run_until_complete(awaitable)

    def engine(self, **config: Any) -> SessionEngine:
        """A session engine matching this store's serializer and max_size."""
        config.setdefault("secret", "s" * 32)
        return SessionEngine(
            SessionConfig(**config), serializer=self.inner.serializer, max_size=self.inner.max_size
        )


MakeStore = Callable[..., StoreProxy]

ACL_PASSWORD = "sessions-secret"


def session_rules(prefix: str = "sess:", **options: bool) -> str:
    """`acl_rules` for the suite's server version (Redis 7.0 lacks three of the names)."""
    version = ".".join(map(str, server_version()[1]))
    return acl_rules(prefix, server_version=version, **options)


class AclServer:
    """A server whose stores connect as least-privilege session users (`acl_rules`).

    One user per key prefix, created on first use: ``sessions`` for ``sess:``, and
    ``sessions-<hash>`` for any other prefix a test asks for.
    """

    def __init__(self, server: LocalServer) -> None:
        self.server = server
        self.users: set[str] = set()

    def admin(self) -> redis.Redis:
        """A client as the default (unrestricted) user."""
        return redis.Redis.from_url(self.server.url, decode_responses=False)

    def user_url(self, admin: redis.Redis, prefix: str = "sess:") -> str:
        """The URL of the session user for `prefix`, created (by `admin`) if needed."""
        user = (
            "sessions"
            if prefix == "sess:"
            else ("sessions-" + hashlib.sha1(prefix.encode()).hexdigest()[:8])
        )
        if user not in self.users:
            admin.execute_command(
                "ACL",
                "SETUSER",
                user,
                "reset",
                "on",
                f">{ACL_PASSWORD}",
                *session_rules(prefix).split(),
            )
            self.users.add(user)
        return f"redis://{user}:{ACL_PASSWORD}@127.0.0.1:{self.server.port}/0"


def acl_denials(admin: redis.Redis) -> list[str]:
    """What the server's ACL LOG holds (all of it, not the last 10), as "user context object
    reason" lines."""

    def text(entry: dict[bytes, Any], field: str) -> str:
        value = entry[field.encode()]
        return value.decode() if isinstance(value, bytes) else str(value)

    return [
        " ".join(text(entry, f) for f in ("username", "context", "object", "reason"))
        for entry in admin.execute_command("ACL", "LOG", 1000)
    ]


class StoreFactory:
    """Builds stores of one kind for one test and closes them all at teardown.

    Kinds: "sync", "async", "memory", "sync-resp3" / "async-resp3" (on RESP3), and "acl": a
    `RedisStore` connected as the session user of its prefix on the ACL server (`acl_server`;
    `clean_acl_redis` fails the test on any ACL denial); "unix" / "unix-async" and "tls" /
    "tls-async": the test server through its unix socket and through a TLS proxy; "sentinel" /
    "sentinel-async": through the session's Sentinel group (``redis+sentinel://``); "cluster" /
    "cluster-async": on the session's 6-node Cluster (``redis+cluster://``; `raw` is then a Cluster
    client).
    """

    def __init__(self, kind: str, request: pytest.FixtureRequest) -> None:
        self.kind = kind
        self.request = request
        self.loop: asyncio.AbstractEventLoop | None = None
        self.made: list[StoreProxy] = []
        self.admins: list[Any] = []

    def __call__(
        self, *, url: str | None = None, options: ConnectOptions | None = None, **store_options: Any
    ) -> StoreProxy:
        raw: redis.Redis | None = None
        kind = self.kind.removesuffix("-resp3")
        if kind != self.kind:
            options = dataclasses.replace(options or ConnectOptions(), protocol=3)
        if self.kind == "memory":
            assert url is None, "the memory runner has no URL"
            proxy = StoreProxy("memory", MemoryStore(**store_options), None, None)
        else:
            if self.kind == "acl" and url is None:
                # With a URL, the test chose its own server and user: it runs as given.
                raw = self.request.getfixturevalue("clean_acl_redis")
                acl: AclServer = self.request.getfixturevalue("acl_server")
                url = acl.user_url(raw, store_options.get("prefix", "sess:"))
            elif self.kind.startswith(("sentinel", "cluster")) and url is None:
                raw, url = self._topology()
            elif self.kind.startswith(("unix", "tls")) and url is None:
                raw = self.request.getfixturevalue("clean_redis")
                url = (
                    self.request.getfixturevalue("redis_server").unix_url
                    if self.kind.startswith("unix")
                    else self.request.getfixturevalue("tls_url")
                )
            elif url is None:
                raw = self.request.getfixturevalue("clean_redis")
                url = self.request.getfixturevalue("redis_url")
            if kind in ("sync", "acl", "unix", "tls", "sentinel", "cluster"):
                inner: Any = RedisStore(connect(url, options), **store_options)
                proxy = StoreProxy("sync", inner, raw, None)
            else:
                if self.loop is None:
                    self.loop = asyncio.new_event_loop()
                inner = AsyncRedisStore(connect_async(url, options), **store_options)
                proxy = StoreProxy("async", inner, raw, self.loop)
        self.made.append(proxy)
        return proxy

    def _topology(self) -> tuple[Any, str]:
        # The shared group or cluster, emptied (test-only FLUSHALL), and an admin client.
        if self.kind.startswith("sentinel"):
            group = self.request.getfixturevalue("sentinel_group")
            group.flush()
            raw: Any = group.admin()
            url = group.url()
        else:
            cluster = self.request.getfixturevalue("redis_cluster")
            cluster.flush()
            raw = cluster.admin()
            url = cluster.url
        self.admins.append(raw)
        return raw, url

    def close(self) -> None:
        for admin in self.admins:
            admin.close()
        for proxy in self.made:
            if proxy.kind == "sync":
                proxy.inner.close()
            elif proxy.kind == "async":
                proxy.run(proxy.inner.aclose())
        if self.loop is not None:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()


def key_count(raw: Any) -> int:
    """How many keys the server (every primary of a Cluster) holds."""
    if isinstance(raw, redis.cluster.RedisCluster):
        return sum(int(node.redis_connection.dbsize()) for node in raw.get_primaries())
    return int(raw.dbsize())


def now_ms() -> int:
    """Wall-clock milliseconds, like the adapters pass to the engine."""
    return int(time.time() * 1000)


def incoming_for(sid: str) -> Incoming:
    """What a verified cookie carrying `sid` gives."""
    return Incoming(sid, handle_for(sid), True, False)


def spec_for(engine: SessionEngine, sid: str, *, lock: bool = False) -> Load:
    """The load spec of a verified cookie carrying `sid`, now (never None: the cookie is good)."""
    spec = engine.load_spec(incoming_for(sid), now_ms(), lock=lock)
    assert spec is not None
    return spec


def open_session(
    store: StoreProxy, engine: SessionEngine, sid: str, now: int | None = None
) -> Session:
    """Load `sid` like an adapter does: load spec, store.load, open_session."""
    incoming = incoming_for(sid)
    now = now_ms() if now is None else now
    spec = engine.load_spec(incoming, now)
    assert spec is not None
    return engine.open_session(incoming, store.load(spec), now)


def serve_read(store: StoreProxy, engine: SessionEngine, sid: str) -> Session:
    """A whole read-only request for `sid`: load, then the end-of-request plan and commit (the
    due TTL refresh, if any)."""
    now = now_ms()
    session = open_session(store, engine, sid, now)
    plan = engine.plan(session, now)
    engine.committed(session, plan, store.commit(plan))
    return session


def create_session(
    store: StoreProxy, engine: SessionEngine, now: int | None = None, **data: Any
) -> Session:
    """A new session holding `data`, written through the engine and committed."""
    now = now_ms() if now is None else now
    session = engine.new_session(now)
    session.update(data)
    plan = engine.plan(session, now)
    assert isinstance(plan, Write) and plan.create and plan.regenerated_from is None
    assert store.commit(plan).applied
    engine.committed(session, plan, Committed(True))
    return session


def key_exists(store: StoreProxy, handle: str) -> bool:
    """Whether the session key exists, asked of the server directly when there is one."""
    if store.raw is not None:
        return bool(store.raw.exists(store.layout.key(handle)))
    return store.get(handle) is not None


# The request cycle of each session `begin` opened (the cycle holds its session, so the id
# stays that session's while the entry lives).
CYCLES: dict[int, RequestCycle] = {}


def cycle_of(session: Session) -> RequestCycle:
    return CYCLES[id(session)]


def begin(store: StoreProxy, engine: SessionEngine, sid: str, *, lock: bool = False) -> Session:
    """The first half of a request: the load (taking the lock when asked)."""
    incoming, now = incoming_for(sid), now_ms()
    spec = engine.load_spec(incoming, now, lock=lock)
    assert spec is not None
    cycle = RequestCycle(engine, incoming, spec, False, engine.new_session(now), now)
    session = cycle.open(store.load(spec))
    CYCLES[id(session)] = cycle
    return session


def end(store: StoreProxy, engine: SessionEngine, session: Session, *, final: bool = True) -> Any:
    """The second half: plan, commit, record. Returns the plan."""
    cycle = CYCLES.get(id(session))
    if cycle is None:  # a session made without `begin`: no lock, the engine's steps
        plan = engine.plan(session, now_ms())
        engine.committed(session, plan, store.commit(plan))
        return plan
    plan = cycle.plan(now_ms(), final=final)
    cycle.finish(plan, store.commit(plan))
    return plan
