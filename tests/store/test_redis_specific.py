"""What only a real server shows: TTLs, Lua script behaviour, foreign keys, errors, connecting.

Every store test here runs for the sync and the asyncio runner (`redis_store`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest
import redis
from redis import exceptions as rx
from redis._parsers.base import BaseParser

from redis_sessions import (
    AsyncRedisStore,
    ConnectOptions,
    RedisStore,
    StoreUnavailableError,
    connect,
    connect_async,
)
from redis_sessions.engine import Loaded, Touch, Write, handle_for, new_id
from redis_sessions.server import free_port
from redis_sessions.store._health import Health, classify
from tests.store.storekit import (
    MakeStore,
    StoreProxy,
    create_session,
    incoming_for,
    now_ms,
    open_session,
    serve_read,
)
from tests.support.servers import command_counts, command_delta

IDLE_S = 100
IDLE_MS = IDLE_S * 1000
FAIL_FAST = ConnectOptions(socket_timeout=0.2, socket_connect_timeout=0.2, retries=0)


def raw_of(store: StoreProxy) -> redis.Redis:
    assert store.raw is not None
    return store.raw


def pttl(store: StoreProxy, handle: str) -> int:
    return int(raw_of(store).pttl(store.layout.key(handle)))


def assert_ttl_within(store: StoreProxy, handle: str, limit_ms: int) -> None:
    """I-1 / T1: the key exists and expires, within `limit_ms`."""
    value = pttl(store, handle)
    assert 0 < value <= limit_ms, f"PTTL {value} not in (0, {limit_ms}]"


# -- TTLs ---------------------------------------------------------------------------------


def test_every_write_sets_a_bounded_ttl(redis_store: StoreProxy) -> None:
    store = redis_store
    engine = store.engine(idle_timeout=IDLE_S)
    session = create_session(store, engine, a=1)  # create
    handle = handle_for(session.id)
    assert_ttl_within(store, handle, IDLE_MS)

    raw_of(store).pexpire(store.layout.key(handle), 5_000)
    loaded = open_session(store, engine, session.id)
    loaded["b"] = 2  # update
    plan = engine.plan(loaded, now_ms())
    assert isinstance(plan, Write) and not plan.create
    assert store.commit(plan).applied
    assert pttl(store, handle) > 5_000  # the update reset the idle timeout
    assert_ttl_within(store, handle, IDLE_MS)

    raw_of(store).pexpire(store.layout.key(handle), 5_000)
    assert store.commit(Touch(handle=handle, ttl_ms=IDLE_MS)).applied  # touch
    assert pttl(store, handle) > 5_000
    assert_ttl_within(store, handle, IDLE_MS)

    loaded = open_session(store, engine, session.id)
    loaded.regenerate()  # regenerate
    plan = engine.plan(loaded, now_ms())
    assert isinstance(plan, Write) and plan.regenerated_from == handle
    assert store.commit(plan).applied
    assert pttl(store, handle) == -2  # the old key is gone
    assert_ttl_within(store, plan.handle, IDLE_MS)


def test_store_api_sets_bounded_ttl(make_redis_store: MakeStore) -> None:
    store = make_redis_store(ttl=30)
    store.set("h1", {"a": 1})
    assert_ttl_within(store, "h1", 30_000)
    store.set("h2", {"a": 1}, ttl=5)
    assert_ttl_within(store, "h2", 5_000)
    assert store.touch("h2", ttl=20)
    assert 5_000 < pttl(store, "h2") <= 20_000
    assert store.touch("h1")
    assert_ttl_within(store, "h1", 30_000)


def test_lifetime_caps_the_ttl(redis_store: StoreProxy) -> None:
    store = redis_store
    engine = store.engine(idle_timeout=IDLE_S, lifetime=60, rolling=True)
    session = create_session(store, engine, a=1)
    handle = handle_for(session.id)
    assert_ttl_within(store, handle, 60_000)  # the write: min(idle, lifetime left)
    raw_of(store).pexpire(store.layout.key(handle), 1_000)
    loaded = open_session(store, engine, session.id)
    assert dict(loaded) == {"a": 1}
    assert pttl(store, handle) > 1_000  # the read refreshed it ...
    assert_ttl_within(store, handle, 60_000)  # ... to what is left of the lifetime, not idle


def test_load_refreshes_ttl_only_when_touch_after_allows(redis_store: StoreProxy) -> None:
    store = redis_store
    raw = raw_of(store)
    engine = store.engine(touch_after=60)  # idle one day, refresh at most once a minute
    session = create_session(store, engine, a=1)
    handle = handle_for(session.id)
    key = store.layout.key(handle)
    raw.pexpire(key, 1_000_000)  # much less than the idle timeout: a refresh is due

    before = command_counts(raw)
    first = serve_read(store, engine, session.id)
    after_first = command_counts(raw)
    assert dict(first) == {"a": 1}
    # The read is read-only; the due refresh is one PEXPIRE at the end of the request.
    assert command_delta(before, after_first) == {
        "evalsha": 1,
        "type": 1,
        "hmget": 1,
        "pttl": 1,
        "hgetall": 1,
        "pexpire": 1,
    }
    ttl_first = pttl(store, handle)
    assert 1_000_000 < ttl_first <= 86_400_000

    second = serve_read(store, engine, session.id)
    after_second = command_counts(raw)
    assert dict(second) == {"a": 1}
    assert command_delta(after_first, after_second).get("pexpire", 0) == 0
    assert pttl(store, handle) <= ttl_first  # only the clock moved it


def test_rolling_load_refreshes_every_time(redis_store: StoreProxy) -> None:
    store = redis_store
    raw = raw_of(store)
    engine = store.engine(rolling=True)  # touch_after 0
    session = create_session(store, engine, a=1)
    before = command_counts(raw)
    open_session(store, engine, session.id)
    open_session(store, engine, session.id)
    assert command_delta(before, command_counts(raw)).get("pexpire", 0) == 2


def test_load_reply_reports_pttl(redis_store: StoreProxy) -> None:
    store = redis_store
    engine = store.engine(touch_after=60)
    session = create_session(store, engine, a=1)
    raw_of(store).pexpire(store.layout.key(handle_for(session.id)), 3_000_000)
    spec = engine.load_spec(incoming_for(session.id), now_ms())
    assert spec is not None
    reply = store.load(spec)
    assert reply is not None and 0 < reply.pttl_ms <= 3_000_000  # a read changes nothing ...
    assert reply.refresh_ms == 86_400_000  # ... and says a refresh to the idle timeout is due
    serve_read(store, engine, session.id)
    reply = store.load(spec)
    assert reply is not None and 3_000_000 < reply.pttl_ms <= 86_400_000
    assert reply.refresh_ms == 0


def test_absolute_lifetime_over_deletes_on_load(redis_store: StoreProxy) -> None:
    store = redis_store
    engine = store.engine(idle_timeout=IDLE_S, lifetime=100)
    created = now_ms() - 200_000  # created 200 s ago, lifetime 100 s
    session = create_session(store, engine, now=created, a=1)
    handle = handle_for(session.id)
    assert raw_of(store).exists(store.layout.key(handle)) == 1
    spec = engine.load_spec(incoming_for(session.id), now_ms())
    assert spec is not None
    assert store.load(spec) is None
    assert raw_of(store).exists(store.layout.key(handle)) == 0  # P7: deleted
    fresh = open_session(store, engine, session.id)
    assert fresh.is_new and dict(fresh) == {}


def test_disable_ttl_writes(make_redis_store: MakeStore) -> None:
    store = make_redis_store(disable_ttl=True)
    store.set("h1", {"a": 1})
    assert pttl(store, "h1") == -1
    assert store.touch("h1")
    assert pttl(store, "h1") == -1
    assert not store.touch("missing")
    engine = store.engine(idle_timeout=IDLE_S, lifetime=None)
    session = create_session(store, engine, a=1)
    handle = handle_for(session.id)
    assert pttl(store, handle) == -1
    assert store.commit(
        Write(handle=handle, fields={"b": b"2"}, delete=(), ttl_ms=IDLE_MS, create=False)
    ).applied
    assert pttl(store, handle) == -1
    assert store.commit(Touch(handle=handle, ttl_ms=IDLE_MS)).applied
    assert not store.commit(Touch(handle="missing", ttl_ms=IDLE_MS)).applied
    assert pttl(store, handle) == -1
    loaded = open_session(store, engine, session.id)
    assert dict(loaded) == {"a": 1, "b": 2}
    assert pttl(store, handle) == -1


def test_disable_ttl_load_with_lifetime_sets_no_ttl(make_redis_store: MakeStore) -> None:
    """disable_ttl: "never set a TTL: sessions live until destroyed" - reads included."""
    store = make_redis_store(disable_ttl=True)
    engine = store.engine()  # default config: idle one day, lifetime 30 days
    session = create_session(store, engine, a=1)
    handle = handle_for(session.id)
    assert pttl(store, handle) == -1
    assert dict(open_session(store, engine, session.id)) == {"a": 1}
    assert pttl(store, handle) == -1


# -- foreign and oversized keys -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["string", "list"])
def test_foreign_key_type(
    redis_store: StoreProxy, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = redis_store
    raw = raw_of(store)
    engine = store.engine()
    sid = new_id()
    handle = handle_for(sid)
    key = store.layout.key(handle)
    if kind == "string":
        raw.set(key, b"not a session")
    else:
        raw.rpush(key, b"a", b"b")
    spec = engine.load_spec(incoming_for(sid), now_ms())
    assert spec is not None
    reply = store.load(spec)
    assert reply == Loaded(pttl_ms=-1, fields={}, foreign=True)  # P4
    with caplog.at_level(logging.WARNING, logger="redis_sessions"):
        session = engine.open_session(incoming_for(sid), reply, now_ms())
    assert session.is_new and session.id != sid
    assert "foreign" in caplog.text
    assert not store.commit(
        Write(handle=handle, fields={"a": b"1"}, delete=("b",), ttl_ms=IDLE_MS, create=False)
    ).applied
    # A regenerate away from the foreign key does not happen either.
    assert not store.commit(
        Write(
            handle="newhandle",
            fields={"a": b"1"},
            delete=(),
            ttl_ms=IDLE_MS,
            create=True,
            regenerated_from=handle,
        )
    ).applied
    assert raw.exists(store.layout.key("newhandle")) == 0
    if kind == "string":
        assert raw.get(key) == b"not a session"
    else:
        assert raw.lrange(key, 0, -1) == [b"a", b"b"]
    assert raw.ttl(key) == -1


def test_get_of_foreign_key_is_none(redis_store: StoreProxy) -> None:
    """get(): "None when missing or unreadable"."""
    store = redis_store
    raw_of(store).set(store.layout.key("stray"), b"x")
    assert store.get("stray") is None


def test_all_skips_foreign_key(redis_store: StoreProxy) -> None:
    """all(): "every readable session": one stray key under the prefix must not break it."""
    store = redis_store
    store.set("good", {"a": 1})
    raw_of(store).set(store.layout.key("stray"), b"x")
    assert dict(store.all()) == {"good": {"a": 1}}


def test_huge_field_is_treated_as_corrupt(
    redis_store: StoreProxy, caplog: pytest.LogCaptureFixture
) -> None:
    store = redis_store
    engine = store.engine()
    sid = new_id()
    handle = handle_for(sid)
    raw_of(store).hset(
        store.layout.key(handle),
        mapping={"$c": str(now_ms()), "big": b'"' + b"x" * (20 << 20) + b'"'},
    )
    spec = engine.load_spec(incoming_for(sid), now_ms())
    assert spec is not None
    reply = store.load(spec)
    with caplog.at_level(logging.WARNING, logger="redis_sessions"):
        session = engine.open_session(incoming_for(sid), reply, now_ms())
    assert session.is_new and session.id != sid and dict(session) == {}  # P5
    assert "unreadable" in caplog.text
    assert store.get(handle) is None


def test_listing_with_many_non_session_keys(make_redis_store: MakeStore) -> None:
    """SCAN pages holding none of our keys (the usual case on a shared database)."""
    store = make_redis_store(scan_count=5)
    raw = raw_of(store)
    raw.mset({f"cache:{i}": b"x" for i in range(300)})
    for h in ("a", "b", "c"):
        store.set(h, {"h": h})
    assert sorted(store.ids()) == ["a", "b", "c"]
    assert store.length() == 3
    assert dict(store.all()) == {h: {"h": h} for h in "abc"}
    assert store.clear() == 3
    assert raw.dbsize() == 300


# -- concurrency ----------------------------------------------------------------------------


def test_concurrent_delta_writes_keep_every_key(redis_store: StoreProxy) -> None:
    """K1: 50 requests load the same session and each set a different key: all 50 survive."""
    store = redis_store
    engine = store.engine()
    session = create_session(store, engine, base=0)
    sid = session.id
    workers = 50

    if store.kind == "sync":
        barrier = threading.Barrier(workers, timeout=10)
        results: list[bool] = []
        errors: list[BaseException] = []

        def work(i: int) -> None:
            try:
                barrier.wait()
                loaded = open_session(store, engine, sid)
                loaded[f"k{i}"] = i
                results.append(store.commit(engine.plan(loaded, now_ms())).applied)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
        assert errors == []
    else:
        inner = store.inner

        async def work_async(i: int) -> bool:
            incoming = incoming_for(sid)
            now = now_ms()
            spec = engine.load_spec(incoming, now)
            assert spec is not None
            loaded = engine.open_session(incoming, await inner.load(spec), now)
            loaded[f"k{i}"] = i
            return (await inner.commit(engine.plan(loaded, now_ms()))).applied

        async def main() -> list[bool]:
            return list(await asyncio.gather(*(work_async(i) for i in range(workers))))

        results = store.run(main())
    assert results == [True] * workers
    final = store.get(handle_for(sid))
    assert final == {"base": 0, **{f"k{i}": i for i in range(workers)}}


# -- scripts --------------------------------------------------------------------------------


def test_noscript_falls_back_to_eval(redis_store: StoreProxy) -> None:
    store = redis_store
    raw = raw_of(store)
    engine = store.engine()
    raw.script_flush()
    before = command_counts(raw)
    session = create_session(store, engine, a=1)  # WRITE not cached: EVAL
    raw.script_flush()
    loaded = open_session(store, engine, session.id)  # READ_ROLLING not cached: EVAL
    assert dict(loaded) == {"a": 1}
    raw.script_flush()
    loaded["b"] = 2
    assert store.commit(engine.plan(loaded, now_ms())).applied
    assert dict(open_session(store, engine, session.id)) == {"a": 1, "b": 2}
    assert command_delta(before, command_counts(raw)).get("eval", 0) >= 3


# -- errors ---------------------------------------------------------------------------------


def test_closed_port_is_unavailable(make_redis_store: MakeStore) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    store = make_redis_store(url=url, options=FAIL_FAST)
    engine = store.engine()
    spec = engine.load_spec(incoming_for(new_id()), now_ms())
    calls: list[Any] = [
        lambda: store.get("h"),
        lambda: store.set("h", {"a": 1}),
        lambda: store.load(spec),
        lambda: store.commit(Touch(handle="h", ttl_ms=1000)),
        lambda: store.destroy("h"),
        lambda: list(store.ids()),
        lambda: store.clear(),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailableError) as info:
            call()
        assert info.value.reason == "connection"
        assert info.value.status_hint == 503
        assert "127.0.0.1" not in str(info.value)


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (rx.BusyLoadingError("Redis is loading the dataset in memory"), "LOADING"),
        (rx.TimeoutError("Timeout reading from socket"), "timeout"),
        (TimeoutError("timed out"), "timeout"),
        (rx.ConnectionError("Connection refused"), "connection"),
        (ConnectionRefusedError(111, "refused"), "connection"),
        (rx.ResponseError("READONLY You can't write against a read only replica."), "READONLY"),
        (rx.ResponseError("OOM command not allowed when used memory > 'maxmemory'."), "OOM"),
        (rx.ResponseError("NOREPLICAS Not enough good replicas to write."), "NOREPLICAS"),
        (rx.ResponseError("MISCONF Errors writing to the AOF file"), "MISCONF"),
        (rx.ResponseError("CLUSTERDOWN The cluster is down"), "CLUSTERDOWN"),
        (rx.ResponseError("MASTERDOWN Link with MASTER is down"), "MASTERDOWN"),
        (rx.ResponseError("TRYAGAIN Multiple keys request during rehashing"), "TRYAGAIN"),
        (rx.ResponseError("BUSY Redis is busy running a script."), "BUSY"),
        (
            rx.ResponseError(
                "Error running script (call to f_x): @user_script:12: OOM command not allowed"
            ),
            "OOM",
        ),
    ],
)
def test_classify_unavailable(exc: BaseException, reason: str) -> None:
    error = classify(exc)
    assert isinstance(error, StoreUnavailableError)
    assert error.reason == reason


@pytest.mark.parametrize(
    "exc",
    [
        rx.ResponseError("ERR syntax error"),
        rx.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        rx.ResponseError("ERR unknown command 'FOO'"),
        rx.DataError("Invalid input"),
        ValueError("not redis"),
    ],
)
def test_classify_not_unavailable(exc: BaseException) -> None:
    assert classify(exc) is None


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("READONLY You can't write against a read only replica.", "READONLY"),
        ("OOM command not allowed when used memory > 'maxmemory'.", "OOM"),
        (
            "OOM command not allowed when used memory > 'maxmemory'. script: "
            "72ccd618ecbc521b2e06b70f8e712db668111e4a, on @user_script:12.",
            "OOM",
        ),
        ("CLUSTERDOWN The cluster is down", "CLUSTERDOWN"),
        (
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
            "MASTERDOWN",
        ),
        ("TRYAGAIN Multiple keys request during rehashing of slot", "TRYAGAIN"),
        ("LOADING Redis is loading the dataset in memory", "LOADING"),
        ("NOREPLICAS Not enough good replicas to write.", "NOREPLICAS"),
        (
            "MISCONF Valkey is configured to save RDB snapshots, but it's currently unable",
            "MISCONF",
        ),
    ],
    ids=[
        "READONLY",
        "OOM",
        "OOM-in-script",
        "CLUSTERDOWN",
        "MASTERDOWN",
        "TRYAGAIN",
        "LOADING",
        "NOREPLICAS",
        "MISCONF",
    ],
)
def test_classify_error_replies_as_redis_py_raises_them(reply: str, reason: str) -> None:
    """redis-py strips the code of the replies it maps to classes (READONLY, OOM, ...)."""
    exc = BaseParser.parse_error(reply)
    error = classify(exc)
    assert isinstance(error, StoreUnavailableError), (type(exc).__name__, str(exc))
    assert error.reason == reason


@pytest.mark.parametrize("operation", ["create", "set"])
def test_real_oom_is_unavailable(
    make_server: Any, make_redis_store: MakeStore, operation: str
) -> None:
    """An OOM raised inside our Lua script keeps its code, and nothing is written."""
    server = make_server(appendonly=False)
    admin = redis.Redis.from_url(server.url)
    try:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)
        store = make_redis_store(url=server.url, options=FAIL_FAST)
        with pytest.raises(StoreUnavailableError) as info:
            if operation == "create":
                engine = store.engine()
                session = engine.new_session(now_ms())
                session["a"] = 1
                store.commit(engine.plan(session, now_ms()))
            else:
                store.set("h", {"a": 1})
        assert info.value.reason == "OOM"
        assert admin.dbsize() == 0
    finally:
        admin.close()


def test_real_readonly_replica_is_unavailable(
    make_server: Any, make_redis_store: MakeStore
) -> None:
    server = make_server(
        appendonly=False, extra_args=["--replicaof", "127.0.0.1", str(free_port())]
    )
    store = make_redis_store(url=server.url, options=FAIL_FAST)
    with pytest.raises(StoreUnavailableError) as info:
        store.set("h", {"a": 1})
    assert info.value.reason == "READONLY"


def test_health_logs_once_per_outage(
    make_server: Any, make_redis_store: MakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    store = make_redis_store(url=f"redis://127.0.0.1:{port}/0", options=FAIL_FAST)
    caplog.set_level(logging.INFO, logger="redis_sessions")
    for _ in range(20):
        with pytest.raises(StoreUnavailableError):
            store.get("h")
    ours = [r for r in caplog.records if r.name == "redis_sessions"]
    assert [r.levelno for r in ours] == [logging.WARNING]
    assert "connection" in ours[0].getMessage()
    assert str(port) not in ours[0].getMessage()

    make_server(port=port, appendonly=False)
    assert store.get("h") is None
    assert store.get("h") is None
    ours = [r for r in caplog.records if r.name == "redis_sessions"]
    assert [r.levelno for r in ours] == [logging.WARNING, logging.INFO]


def test_health_unit(caplog: pytest.LogCaptureFixture) -> None:
    health = Health("TestStore")
    caplog.set_level(logging.INFO, logger="redis_sessions")
    health.ok()
    bug = rx.ResponseError("ERR syntax error")
    assert health.failed(bug) is bug  # not an outage: returned as is, nothing logged
    assert health.available and caplog.records == []
    for _ in range(5):
        error = health.failed(rx.ConnectionError("refused"))
        assert isinstance(error, StoreUnavailableError)
    assert not health.available
    health.ok()
    health.ok()
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.INFO]
    assert "TestStore" in caplog.records[0].getMessage()


# -- connecting -----------------------------------------------------------------------------


def test_connect_passes_explicit_settings() -> None:
    defaults = ConnectOptions()
    client = connect("redis://127.0.0.1:1/0")
    assert isinstance(client, redis.Redis)  # a standalone URL
    try:
        kwargs = client.connection_pool.connection_kwargs
        assert defaults.socket_timeout is not None
        assert defaults.socket_connect_timeout is not None
        assert defaults.health_check_interval > 0
        assert kwargs["socket_timeout"] == defaults.socket_timeout
        assert kwargs["socket_connect_timeout"] == defaults.socket_connect_timeout
        assert kwargs["health_check_interval"] == defaults.health_check_interval
        assert kwargs["decode_responses"] is False
        retry = kwargs["retry"]
        assert retry._retries == defaults.retries
        assert client.connection_pool.max_connections == defaults.max_connections
    finally:
        client.close()
    custom = ConnectOptions(
        socket_timeout=0.3,
        socket_connect_timeout=0.2,
        retries=3,
        health_check_interval=7,
        max_connections=5,
    )
    client = connect("redis://127.0.0.1:1/0", custom)
    assert isinstance(client, redis.Redis)  # a standalone URL
    try:
        kwargs = client.connection_pool.connection_kwargs
        assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (0.3, 0.2)
        assert kwargs["health_check_interval"] == 7
        assert kwargs["retry"]._retries == 3
        assert client.connection_pool.max_connections == 5
    finally:
        client.close()


def test_connect_async_passes_explicit_settings() -> None:
    custom = ConnectOptions(
        socket_timeout=0.3, socket_connect_timeout=0.2, retries=2, health_check_interval=7
    )
    client = connect_async("redis://127.0.0.1:1/0", custom)
    assert isinstance(client, redis.asyncio.Redis)  # a standalone URL
    try:
        kwargs = client.connection_pool.connection_kwargs
        assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (0.3, 0.2)
        assert kwargs["health_check_interval"] == 7
        assert kwargs["retry"]._retries == 2
        assert kwargs["decode_responses"] is False
    finally:
        asyncio.run(client.aclose())


def test_connect_honours_redis_url(
    monkeypatch: pytest.MonkeyPatch, redis_server: Any, clean_redis: redis.Redis
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    client = connect()
    assert isinstance(client, redis.Redis)  # a standalone URL
    try:
        assert client.connection_pool.connection_kwargs["port"] == redis_server.port
        assert client.ping()
    finally:
        client.close()
    store = RedisStore()  # no client, no url: $REDIS_URL
    try:
        store.set("h", {"a": 1})
        assert clean_redis.exists("sess:{h}") == 1
    finally:
        store.close()

    async def use_async() -> Any:
        async_store = AsyncRedisStore()
        try:
            return await async_store.get("h")
        finally:
            await async_store.aclose()

    assert asyncio.run(use_async()) == {"a": 1}
    # An explicit URL wins over the environment.
    client = connect("redis://127.0.0.1:1/0")
    assert isinstance(client, redis.Redis)  # a standalone URL
    try:
        assert client.connection_pool.connection_kwargs["port"] == 1
    finally:
        client.close()


def test_connect_without_url_or_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    client = connect()
    assert isinstance(client, redis.Redis)  # a standalone URL
    try:
        kwargs = client.connection_pool.connection_kwargs
        assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("127.0.0.1", 6379, 0)
    finally:
        client.close()


def test_unix_socket_url(make_server: Any, make_redis_store: MakeStore) -> None:
    server = make_server(appendonly=False, unix_socket=True)
    store = make_redis_store(url=server.unix_url)
    assert store.set("h", {"over": "unix"})
    assert store.get("h") == {"over": "unix"}
    assert list(store.ids()) == ["h"]
    admin = redis.Redis.from_url(server.url)
    try:
        assert admin.exists("sess:{h}") == 1
    finally:
        admin.close()


def test_acl_user_in_url(make_server: Any, make_redis_store: MakeStore) -> None:
    server = make_server(
        appendonly=False, extra_args=["--user", "app", "on", ">apppass", "~sess:*", "+@all"]
    )
    store = make_redis_store(url=f"redis://app:apppass@127.0.0.1:{server.port}/0")
    engine = store.engine()
    session = create_session(store, engine, a=1)
    assert dict(open_session(store, engine, session.id)) == {"a": 1}
    assert store.set("h", {"b": 2})
    assert sorted(store.ids()) == sorted(["h", handle_for(session.id)])
    assert store.clear() == 2


def test_password_in_url(make_server: Any, make_redis_store: MakeStore) -> None:
    server = make_server(appendonly=False, password="p@ss:w/rd")
    store = make_redis_store(url=server.url)
    assert store.set("h", {"a": 1})
    assert store.get("h") == {"a": 1}
    assert store.destroy("h") == 1


def test_time_budget_of_a_failing_call(make_redis_store: MakeStore) -> None:
    """With short timeouts and no retry a dead port fails fast (no hidden long waits)."""
    store = make_redis_store(url=f"redis://127.0.0.1:{free_port()}/0", options=FAIL_FAST)
    start = time.monotonic()
    with pytest.raises(StoreUnavailableError):
        store.get("h")
    assert time.monotonic() - start < 2


def test_health_refused_writes_are_one_outage_while_reads_succeed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    health = Health("TestStore")
    caplog.set_level(logging.INFO, logger="redis_sessions")
    for _ in range(5):  # a full store: every request reads fine, then fails to write
        health.ok(wrote=False)
        error = health.failed(rx.ResponseError("OOM command not allowed when used memory"))
        assert isinstance(error, StoreUnavailableError) and error.reason == "OOM"
    assert health.available and not health.writable
    health.ok(wrote=True)
    health.ok(wrote=True)
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert messages == [
        (
            logging.WARNING,
            "session store TestStore refuses writes (OOM); answering 503 to "
            "requests that write until it accepts them",
        ),
        (logging.INFO, "session store TestStore accepts writes again"),
    ]


def test_async_pool_hands_connections_to_waiters_in_order_and_times_out(redis_url: str) -> None:
    async def scenario() -> None:
        # 300 commands on 2 connections: all served in turn. The last waits for the 298
        # before it, so the timeout is generous (a loaded CI machine took over 0.3 s).
        patient = connect_async(redis_url, ConnectOptions(max_connections=2, pool_timeout=30))
        assert isinstance(patient, redis.asyncio.Redis)  # a standalone URL
        try:
            results = await asyncio.gather(*(patient.execute_command("PING") for _ in range(300)))
            assert results == [True] * 300
            pool = patient.connection_pool
            assert len(pool._in_use_connections) == 0 and len(pool._available_connections) == 2
        finally:
            await patient.aclose()
        client = connect_async(redis_url, ConnectOptions(max_connections=2, pool_timeout=0.3))
        assert isinstance(client, redis.asyncio.Redis)  # a standalone URL
        pool = client.connection_pool
        try:
            # Both connections held elsewhere: a command waits pool_timeout, then fails.
            held = [await pool.get_connection(), await pool.get_connection()]
            started = time.monotonic()
            with pytest.raises(redis.ConnectionError, match="Too many connections"):
                await client.execute_command("PING")
            assert 0.3 <= time.monotonic() - started < 1.5
            # A waiter gets a connection released while it waits.
            waiting = asyncio.ensure_future(client.execute_command("PING"))
            await asyncio.sleep(0)  # let it queue (a scheduling step, not a timed wait)
            await pool.release(held.pop())
            assert await waiting is True
            await pool.release(held.pop())
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_health_with_settle_keeps_a_partial_outage_as_one(
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Cluster with one node down: failures and successes interleave; one WARNING, and one
    INFO once no failure came for `settle` seconds, naming the other reasons seen."""
    now = [100.0]
    monkeypatch.setattr(
        "redis_sessions.store._health.time",
        type("Clock", (), {"monotonic": staticmethod(lambda: now[0])}),
    )
    caplog.set_level(logging.INFO, logger="redis_sessions")
    health = Health("TestStore", settle=0.5)
    for step in range(10):  # every other command lands on the dead node
        now[0] += 0.1
        if step % 2:
            health.ok()
        else:
            health.failed(rx.ConnectionError("node down"))
    health.failed(rx.ClusterDownError("CLUSTERDOWN The cluster is down"))
    now[0] += 0.4
    health.ok()
    assert not health.available  # 0.4 s of quiet: not over yet
    now[0] += 0.2
    health.ok()
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert messages == [
        (
            logging.WARNING,
            "session store TestStore unavailable (connection); answering 503 until it is back",
        ),
        (
            logging.INFO,
            "session store TestStore available again (during the outage also: CLUSTERDOWN)",
        ),
    ]
    assert classify(rx.ClusterError("TTL exhausted.")) is not None


def test_store_from_a_url_takes_connect_options_and_client_kwargs(redis_url: str) -> None:
    store = RedisStore(
        url=redis_url,
        connect_options=ConnectOptions(max_connections=3),
        client_kwargs={"client_name": "checkout-7"},
    )
    try:
        assert store.set("h", {"a": 1}) and store.get("h") == {"a": 1}
        client = store.client
        assert isinstance(client, redis.Redis)  # a standalone URL
        assert client.connection_pool.max_connections == 3
        assert client.client_getname() == "checkout-7"
    finally:
        store.close()

    async def from_url() -> None:
        astore = AsyncRedisStore(
            url=redis_url,
            connect_options=ConnectOptions(max_connections=2),
            client_kwargs={"client_name": "checkout-8"},
        )
        try:
            assert await astore.get("h") == {"a": 1}
            client = astore.client
            assert isinstance(client, redis.asyncio.Redis)  # a standalone URL
            assert client.connection_pool.max_connections == 2
            assert await client.client_getname() == "checkout-8"
        finally:
            await astore.aclose()

    asyncio.run(from_url())
