"""Connecting to every topology: Sentinel discovery and its timeouts, the Cluster client's ACL
rules, and the WAIT / WAITAOF durability options, on real processes.

The store contract itself runs on the Sentinel group and the Cluster as runners of `store`
(tests/store/conftest.py); the failover cases are in tests/sentinel and tests/cluster. URL
parsing and `TaskGate` need no server: tests/unit/test_urls.py and tests/unit/test_pools.py.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio.cluster
import redis.cluster
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from redis_sessions import (
    AsyncRedisStore,
    ConnectOptions,
    RedisStore,
    StoreUnavailableError,
    connect,
    connect_async,
)
from redis_sessions._connect import cluster_limits
from redis_sessions._errors import ConfigError
from redis_sessions.asgi import SessionMiddleware
from redis_sessions.engine import Write, handle_for
from redis_sessions.server import free_port
from tests.store.storekit import StoreProxy, create_session, now_ms, open_session, session_rules
from tests.support.faultproxy import FaultProxy
from tests.support.sentinelkit import SentinelGroup, SentinelProcess
from tests.support.servers import wait_until

SECRET = "topology-secret-0123456789abcdef"


# -- Sentinel ------------------------------------------------------------------------------------


def dead_port() -> int:
    """A port nothing listens on (connections are refused at once)."""
    return free_port()


def silent_listener() -> socket.socket:
    """A listening socket that never answers: a Sentinel query to it waits for its timeout
    (the kernel completes the connect; nothing ever replies)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


def test_sentinel_url_reaches_the_master_past_dead_sentinels(sentinel_group: SentinelGroup) -> None:
    sentinel_group.flush()
    hosts = ",".join(f"127.0.0.1:{p}" for p in (dead_port(), *sentinel_group.sentinel_ports))
    store = RedisStore(connect(f"redis+sentinel://{hosts}/{sentinel_group.service}/0"))
    try:
        assert store.set("h", {"a": 1})
        assert store.get("h") == {"a": 1}
        with sentinel_group.admin() as admin:
            assert admin.exists(store.layout.key("h")) == 1  # on the master itself
    finally:
        store.close()


def test_a_hanging_sentinel_costs_at_most_the_sentinel_timeout(
    sentinel_group: SentinelGroup,
) -> None:
    sentinel_group.flush()
    hang = silent_listener()
    try:
        hosts = ",".join(
            f"127.0.0.1:{p}" for p in (hang.getsockname()[1], *sentinel_group.sentinel_ports)
        )
        options = ConnectOptions(sentinel_timeout=0.2, socket_timeout=5, socket_connect_timeout=5)
        store = RedisStore(connect(f"redis+sentinel://{hosts}/{sentinel_group.service}/0", options))
        try:
            started = time.monotonic()
            assert store.set("h", {"a": 1})
            # The data connections' 5 s timeouts never apply to the Sentinel queries.
            assert time.monotonic() - started < 1.5
        finally:
            store.close()
    finally:
        hang.close()


def test_unknown_service_and_no_sentinel_are_unavailable_not_errors(
    sentinel_group: SentinelGroup, caplog: pytest.LogCaptureFixture
) -> None:
    hosts = ",".join(f"127.0.0.1:{p}" for p in sentinel_group.sentinel_ports)
    for url in (
        f"redis+sentinel://{hosts}/no-such-service/0",
        f"redis+sentinel://127.0.0.1:{dead_port()}/{sentinel_group.service}/0",
    ):
        store = RedisStore(connect(url, ConnectOptions(retries=0)))
        try:
            with pytest.raises(StoreUnavailableError) as caught:
                store.get("h")
            assert "sentinel" in caught.value.reason.lower()
        finally:
            store.close()
    assert any("no master" in r.getMessage().lower() for r in caplog.records)


def test_async_sentinel_store_and_its_sentinel_connections_close(
    sentinel_group: SentinelGroup,
) -> None:
    sentinel_group.flush()

    async def main() -> None:
        client = connect_async(sentinel_group.url())
        store = AsyncRedisStore(client)
        assert await store.set("h", {"a": 1})
        assert await store.get("h") == {"a": 1}
        await store.aclose()

    asyncio.run(main())  # an unclosed Sentinel socket would fail the test (warnings are errors)


# -- WAIT / WAITAOF ------------------------------------------------------------------------------


def test_wait_replicas_puts_every_save_on_both_replicas(sentinel_group: SentinelGroup) -> None:
    sentinel_group.flush()
    store = RedisStore(connect(sentinel_group.url()), wait_replicas=2, wait_timeout=1.0)
    replicas = [redis.Redis(port=r.port, decode_responses=False) for r in sentinel_group.replicas()]
    try:
        for i in range(20):
            assert store.set(f"h{i}", {"i": i})
            key = store.layout.key(f"h{i}")
            # No waiting here: WAIT returned only once both replicas had the write.
            assert [r.exists(key) for r in replicas] == [1, 1]
        assert store.destroy("h0") == 1
        assert [r.exists(store.layout.key("h0")) for r in replicas] == [0, 0]
    finally:
        store.close()
        for r in replicas:
            r.close()


def test_too_few_acknowledgements_fail_the_save_as_unavailable(
    sentinel_group: SentinelGroup, caplog: pytest.LogCaptureFixture
) -> None:
    sentinel_group.flush()
    store = RedisStore(connect(sentinel_group.url()), wait_replicas=3, wait_timeout=0.05)
    try:
        with pytest.raises(StoreUnavailableError) as caught:
            store.set("h", {"a": 1})
        assert caught.value.reason == "NOREPLICAS"
        assert any("refuses writes (NOREPLICAS)" in r.getMessage() for r in caplog.records)
        assert store.get("h") == {"a": 1}  # applied on the master, not acknowledged as durable
    finally:
        store.close()


def test_engine_saves_wait_and_a_short_wait_answers_503(sentinel_group: SentinelGroup) -> None:
    sentinel_group.flush()

    async def bump(request: Request) -> JSONResponse:
        request.session["n"] = request.session.get("n", 0) + 1
        return JSONResponse(dict(request.session))

    def app(wait_replicas: int, wait_timeout: float) -> TestClient:
        store = AsyncRedisStore(
            connect_async(sentinel_group.url()),
            wait_replicas=wait_replicas,
            wait_timeout=wait_timeout,
        )

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            yield
            await store.aclose()  # on the app's own loop, where its connections live

        inner = Starlette(routes=[Route("/", bump)], lifespan=lifespan)
        asgi = SessionMiddleware(inner, store, secret=SECRET, retry_after=3)
        return TestClient(asgi, raise_server_exceptions=False)

    with app(2, 2.0) as ok:  # both replicas ack (a loaded machine may take > 50 ms)
        assert [ok.get("/").json()["n"] for _ in range(3)] == [1, 2, 3]
        cookie = ok.cookies.get("session")
    with app(3, 0.05) as short:  # there are only 2 replicas
        response = short.get("/", headers={"cookie": f"session={cookie}"})
        assert response.status_code == 503
        assert response.headers["retry-after"] == "3"


@pytest.mark.server_version("7.2", reason="WAITAOF")
def test_wait_aof_waits_for_the_fsync(make_server: Any) -> None:
    # everysec: the AOF reaches the disk within about a second, so a save waits up to that.
    server = make_server(appendonly=True, appendfsync="everysec")
    store = RedisStore(connect(server.url), wait_aof=True, wait_timeout=0.001)
    slow = RedisStore(connect(server.url), wait_aof=True, wait_timeout=2.5)
    try:
        with pytest.raises(StoreUnavailableError, match="NOREPLICAS"):
            store.set("h", {"a": 1})  # not on disk within 1 ms
        assert slow.set("h", {"a": 2})
        assert slow.get("h") == {"a": 2}
    finally:
        store.close()
        slow.close()


@pytest.mark.server_version("7.2", reason="WAITAOF")
def test_regenerate_with_wait_aof(make_server: Any) -> None:
    server = make_server(appendonly=True, appendfsync="always")  # on disk before the reply
    store = RedisStore(connect(server.url), wait_aof=True)
    try:
        proxy = StoreProxy("sync", store, None, None)
        engine = proxy.engine()
        session = create_session(proxy, engine, user="alice")
        loaded = open_session(proxy, engine, session.id)
        loaded.regenerate()
        plan = engine.plan(loaded, now_ms())
        assert isinstance(plan, Write)
        assert store.commit(plan).applied
        assert store.get(handle_for(session.id)) is None
        assert store.get(plan.handle) == {"user": "alice"}
    finally:
        store.close()


def test_wait_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="wait_replicas"):
        RedisStore(redis.Redis(), wait_replicas=-1)
    with pytest.raises(ConfigError, match="wait_timeout"):
        RedisStore(redis.Redis(), wait_replicas=1, wait_timeout=0)


def test_wait_is_refused_with_a_cluster_client(redis_cluster: Any) -> None:
    client = connect(redis_cluster.url)
    try:
        with pytest.raises(ConfigError, match="Cluster"):
            RedisStore(client, wait_replicas=1)
    finally:
        client.close()


# -- Cluster ACL ---------------------------------------------------------------------------------


def test_cluster_store_runs_as_the_cluster_session_user(redis_cluster: Any) -> None:
    """ACL users are per node in a Cluster: created on each; none may log a refusal."""
    nodes = [redis.Redis(port=n.port, decode_responses=False) for n in redis_cluster.running()]
    redis_cluster.flush()
    try:
        for node in nodes:
            node.execute_command(
                "ACL",
                "SETUSER",
                "sessions",
                "reset",
                "on",
                ">pw",
                *session_rules(cluster=True).split(),
            )
            node.execute_command("ACL", "LOG", "RESET")
        url = redis_cluster.url.replace("redis+cluster://", "redis+cluster://sessions:pw@")
        store = RedisStore(url=url)
        try:
            proxy = StoreProxy("sync", store, None, None)
            engine = proxy.engine()
            for _ in range(20):
                session = create_session(proxy, engine, user="bob")
                loaded = open_session(proxy, engine, session.id)
                loaded.regenerate()
                loaded.incr("visits")
                plan = engine.plan(loaded, now_ms())
                assert store.commit(plan).applied
            assert store.length() == 20
            assert len(list(store.sessions())) == 20
            assert store.clear() == 20
        finally:
            store.close()

        async def run_async() -> None:
            store = AsyncRedisStore(url=url)
            assert await store.set("h", {"a": 1})
            assert await store.length() == 1
            await store.aclose()

        asyncio.run(run_async())
        denials = [entry for node in nodes for entry in node.execute_command("ACL", "LOG")]
        assert denials == []
    finally:
        for node in nodes:
            node.execute_command("ACL", "DELUSER", "sessions")
            node.close()


# -- Sentinel with passwords ---------------------------------------------------------------------


@pytest.fixture
def guarded_sentinel(make_server: Any, tmp_path: Any) -> Iterator[tuple[int, int]]:
    """A master with a password and one Sentinel with a password of its own (quorum 1):
    yields (sentinel port, master port)."""
    master = make_server(password="data-pw", appendonly=False)
    sentinel = SentinelProcess(
        tmp_path / "sentinel",
        master.port,
        "guarded",
        quorum=1,
        password="sentinel-pw",
        master_password="data-pw",
    ).start()
    try:

        def knows_master() -> bool:
            state = sentinel.master_state()
            return state is not None and state.get("flags") == "master"  # seen and not down

        wait_until(knows_master, 10, message="the Sentinel never saw its master")
        assert sentinel.port is not None
        yield sentinel.port, master.port
    finally:
        sentinel.stop()


def test_sentinel_password_apart_from_the_data_password(guarded_sentinel: tuple[int, int]) -> None:
    port, master_port = guarded_sentinel
    base = f"127.0.0.1:{port}/guarded/0"
    store = RedisStore(url=f"redis+sentinel://:data-pw@{base}?sentinel_password=sentinel-pw")
    try:
        assert store.set("h", {"a": 1})
        assert store.get("h") == {"a": 1}
    finally:
        store.close()
    with redis.Redis(port=master_port, password="data-pw") as master:
        assert master.exists(store.layout.key("h")) == 1
    # Each password is checked where it belongs: the Sentinel refuses the client without its
    # own, the master refuses a wrong data password.
    for url, reason in (
        (f"redis+sentinel://:data-pw@{base}", "Sentinel: no master"),
        (f"redis+sentinel://:wrong@{base}?sentinel_password=sentinel-pw", "authentication failed"),
    ):
        bad = RedisStore(connect(url, ConnectOptions(retries=0)))
        try:
            with pytest.raises(StoreUnavailableError) as caught:
                bad.get("h")
            assert caught.value.reason.startswith(reason)
        finally:
            bad.close()


# -- Cluster connection bursts -------------------------------------------------------------------


def test_cluster_bursts_wait_for_a_connection_instead_of_failing(redis_cluster: Any) -> None:
    """More concurrent commands than a node's pool: they queue (sync threads and asyncio
    tasks), none fails while the Cluster is healthy."""
    redis_cluster.flush()
    small = ConnectOptions(max_connections=2)

    async def burst() -> list[bool]:
        store = AsyncRedisStore(connect_async(redis_cluster.url, small))
        try:
            return list(await asyncio.gather(*(store.set(f"a{i}", {"i": i}) for i in range(60))))
        finally:
            await store.aclose()

    assert asyncio.run(burst()) == [True] * 60
    store = RedisStore(connect(redis_cluster.url, small))
    try:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            done = list(pool.map(lambda i: store.set(f"s{i}", {"i": i}), range(60)))
        assert done == [True] * 60
        assert store.length() == 120
    finally:
        store.close()


def test_cluster_store_keeps_its_commands_to_the_pool_and_waits_pool_timeout(
    redis_cluster: Any,
) -> None:
    """A Cluster store keeps no more commands in flight than a node pool has connections
    (a full node pool fails a pipeline as if the node were down): a burst of threads on one
    connection all succeed; with its turns all taken, a command waits the client's
    `pool_timeout` (not a fixed default), then is unavailable ("no free connection")."""
    redis_cluster.flush()
    store = RedisStore(
        connect(redis_cluster.url, ConnectOptions(max_connections=1, pool_timeout=0.2))
    )
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            assert list(pool.map(lambda i: store.set(f"t{i}", {"i": i}), range(40))) == [True] * 40
        assert dict(store.all()) == {f"t{i}": {"i": i} for i in range(40)}
        gate = store._runner.gate
        assert gate is not None and gate.acquire()  # the one turn, taken elsewhere
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailableError, match="no free connection"):
                store.get("t1")
            assert 0.2 <= time.monotonic() - started < 1.0  # not the default 1 s
        finally:
            gate.release()
        assert store.get("t1") == {"i": 1}
    finally:
        store.close()


def test_async_cluster_store_waits_its_turn_first_come_first_served(redis_cluster: Any) -> None:
    redis_cluster.flush()

    async def scenario() -> None:
        store = AsyncRedisStore(
            connect_async(redis_cluster.url, ConnectOptions(max_connections=1, pool_timeout=0.2))
        )
        try:
            assert (
                await asyncio.gather(*(store.set(f"a{i}", {"i": i}) for i in range(40)))
                == [True] * 40
            )
            gate = store._runner.gate
            assert gate is not None and await gate.acquire()
            try:
                started = time.monotonic()
                with pytest.raises(StoreUnavailableError, match="no free connection"):
                    await store.get("a1")
                assert 0.2 <= time.monotonic() - started < 1.0
                # A waiter gets the turn released while it waits.
                waiting = asyncio.ensure_future(store.get("a2"))
                await asyncio.sleep(0)  # let it queue (a scheduling step, not a timed wait)
            finally:
                gate.release()
            assert await waiting == {"i": 2}
            assert await store.length() == 40
        finally:
            await store.aclose()

    asyncio.run(scenario())


def test_cluster_limits_of_our_clients_and_of_clients_built_elsewhere(redis_cluster: Any) -> None:
    options = ConnectOptions(max_connections=3, pool_timeout=0.4)
    ours = connect(redis_cluster.url, options)
    ours_async = connect_async(redis_cluster.url, options)
    port = redis_cluster.nodes[0].port
    theirs = redis.cluster.RedisCluster(host="127.0.0.1", port=port, max_connections=5)
    theirs_async = redis.asyncio.cluster.RedisCluster(
        host="127.0.0.1", port=port, max_connections=7
    )
    default_wait = ConnectOptions().pool_timeout
    assert isinstance(ours_async, redis.asyncio.cluster.RedisCluster)  # a Cluster URL
    try:
        assert cluster_limits(ours) == cluster_limits(ours_async) == (3, 0.4)
        assert ours_async.reinitialize_steps == 0  # MOVED patches the map, closes nothing
        assert cluster_limits(theirs) == (5, default_wait)
        assert cluster_limits(theirs_async) == (7, default_wait)
        assert RedisStore(theirs)._runner.gate is not None
    finally:
        ours.close()
        theirs.close()
        asyncio.run(ours_async.aclose())
        asyncio.run(theirs_async.aclose())


def test_async_cluster_store_reads_the_slot_map_before_a_burst_of_first_commands(
    redis_cluster: Any,
) -> None:
    """Many tasks starting on a fresh asyncio Cluster client: without the store waiting for
    the slot map, commands sent while it is read went to the wrong node (MOVED), and every
    5th MOVED made redis-py close all the client's connections under the other commands."""
    redis_cluster.flush()
    for node in redis_cluster.primaries():
        redis_cluster._call(node, "CONFIG", "RESETSTAT")

    async def burst() -> list[bool]:
        store = AsyncRedisStore(connect_async(redis_cluster.url))
        try:
            return list(await asyncio.gather(*(store.set(f"b{i}", {"i": i}) for i in range(200))))
        finally:
            await store.aclose()

    for _ in range(3):
        assert asyncio.run(burst()) == [True] * 200
    stats = [redis_cluster._call(node, "INFO", "errorstats") for node in redis_cluster.primaries()]
    assert not [line for text in stats for line in text.splitlines() if "MOVED" in line]


def test_cluster_store_made_while_no_node_answers_is_unavailable_then_recovers(
    redis_cluster: Any,
) -> None:
    """The app starts before the Cluster does: the store is made anyway (redis-py's sync
    client would raise in its constructor), answers unavailable ("no node reachable" is not a
    RedisError to redis-py), and works once a node answers, without a restart."""
    redis_cluster.flush()
    with FaultProxy("127.0.0.1", redis_cluster.primaries()[0].port) as proxy:
        proxy.mode = "reset"
        url = f"redis+cluster://127.0.0.1:{proxy.port}/"
        store = RedisStore(url=url)
        try:
            assert store.client is None
            with pytest.raises(StoreUnavailableError, match="cluster"):
                store.get("h")
            with pytest.raises(StoreUnavailableError, match="cluster"):
                store.length()
            proxy.mode = "pass"  # the slot map then names the nodes themselves
            assert store.set("h", {"a": 1})
            assert store.get("h") == {"a": 1}
            assert store.length() == 1
            assert isinstance(store.client, redis.cluster.RedisCluster)
        finally:
            store.close()

        async def first_use() -> None:
            proxy.mode = "reset"
            astore = AsyncRedisStore(url=url)
            try:
                with pytest.raises(StoreUnavailableError, match="cluster"):
                    await astore.get("h")
                with pytest.raises(StoreUnavailableError, match="cluster"):
                    await astore.length()
                proxy.mode = "pass"
                assert await astore.get("h") == {"a": 1}
                assert await astore.length() == 1
            finally:
                await astore.aclose()

        asyncio.run(first_use())
