"""K2 and the atomic helpers over real HTTP: parallel increments, set-if-absent, and the opt-in
per-session lock, on uvicorn (ASGI) and a threaded WSGI server, against a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import socketserver
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest
import redis
import uvicorn

from redis_sessions import AsyncRedisStore, ConnectOptions, RedisStore, connect, connect_async
from redis_sessions._adapter import LOCKED_BODY
from redis_sessions.asgi import SessionMiddleware as ASGISessions
from redis_sessions.engine import handle_for
from redis_sessions.server import free_port
from redis_sessions.wsgi import SessionMiddleware as WSGISessions
from redis_sessions.wsgi import get_session
from tests.adapters.apps import SECRET, Gate, asgi_app, wsgi_app
from tests.faults.faultkit import figure
from tests.support.servers import RoundTrips, wait_until

PARALLEL = 50


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis.asyncio runs on asyncio only


@contextlib.contextmanager
def uvicorn_serving(app: Any) -> Iterator[str]:
    """`app` under uvicorn on 127.0.0.1 in a thread (its lifespan closes the store)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 10, message="uvicorn did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr."""


@contextlib.contextmanager
def wsgi_serving(app: Any) -> Iterator[str]:
    """`app` under a threaded wsgiref server on 127.0.0.1."""
    httpd = make_server(
        "127.0.0.1", 0, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


async def parallel_gets(
    base: str, path: str, cookie: str, n: int = PARALLEL
) -> list[tuple[int, float, str]]:
    """`n` concurrent GETs, each on its own connection: (status, seconds, body)."""
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http:

        async def one() -> tuple[int, float, str]:
            started = time.monotonic()
            response = await http.get(path, headers={"cookie": f"session={cookie}"})
            return response.status_code, time.monotonic() - started, response.text

        return list(await asyncio.gather(*(one() for _ in range(n))))


def threaded_gets(
    base: str, path: str, cookie: str, n: int = PARALLEL
) -> list[tuple[int, float, str]]:
    barrier = threading.Barrier(min(n, 16))

    def one(i: int) -> tuple[int, float, str]:
        with httpx.Client(base_url=base, timeout=30) as http:
            if i < 16:
                barrier.wait(timeout=10)
            started = time.monotonic()
            response = http.get(path, headers={"cookie": f"session={cookie}"})
            return response.status_code, time.monotonic() - started, response.text

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(one, range(n)))


def new_cookie(base: str) -> str:
    with httpx.Client(base_url=base) as http:
        return str(http.get("/set?start=1").cookies["session"])


def stored_n(client: redis.Redis, cookie: str) -> int:
    raw = client.hget(f"sess:{{{handle_for(cookie.rsplit('.', 1)[0])}}}", "n")
    return int(raw) if raw is not None else 0


def asgi_sessions(redis_url: str, **options: Any) -> ASGISessions:
    store = AsyncRedisStore(connect_async(redis_url))
    return ASGISessions(asgi_app(on_shutdown=store.aclose), store, secret=SECRET, **options)


@pytest.mark.anyio
async def test_50_parallel_increments_asgi_lose_nothing(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    with uvicorn_serving(asgi_sessions(redis_url)) as base:
        cookie = new_cookie(base)
        naive = await parallel_gets(base, "/incr", cookie)  # session["n"] += 1: last writer wins
        naive_n = stored_n(clean_redis, cookie)
        clean_redis.hset(f"sess:{{{handle_for(cookie.rsplit('.', 1)[0])}}}", "n", 0)
        atomic = await parallel_gets(base, "/count", cookie)
        atomic_n = stored_n(clean_redis, cookie)
    assert {status for status, _, _ in naive + atomic} == {200}
    figure(
        "INCR-asgi",
        requests=PARALLEL,
        atomic_final=atomic_n,
        atomic_lost=PARALLEL - atomic_n,
        naive_final=naive_n,
        naive_lost=PARALLEL - naive_n,
    )
    assert atomic_n == PARALLEL


def test_50_parallel_increments_wsgi_lose_nothing(redis_url: str, clean_redis: redis.Redis) -> None:
    store = RedisStore(connect(redis_url))
    app = WSGISessions(wsgi_app, store, secret=SECRET)
    with wsgi_serving(app) as base:
        cookie = new_cookie(base)
        naive = threaded_gets(base, "/incr", cookie)
        naive_n = stored_n(clean_redis, cookie)
        clean_redis.hset(f"sess:{{{handle_for(cookie.rsplit('.', 1)[0])}}}", "n", 0)
        atomic = threaded_gets(base, "/count", cookie)
        atomic_n = stored_n(clean_redis, cookie)
    store.close()
    assert {status for status, _, _ in naive + atomic} == {200}
    figure(
        "INCR-wsgi",
        requests=PARALLEL,
        atomic_final=atomic_n,
        atomic_lost=PARALLEL - atomic_n,
        naive_final=naive_n,
        naive_lost=PARALLEL - naive_n,
    )
    assert atomic_n == PARALLEL


@pytest.mark.anyio
async def test_k2_lock_serializes_50_parallel_read_modify_writes_asgi(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    timeout = 5.0
    with uvicorn_serving(
        asgi_sessions(redis_url, lock=["/incr"], lock_timeout=timeout, lock_waiters=PARALLEL)
    ) as base:
        cookie = new_cookie(base)
        results = await parallel_gets(base, "/incr", cookie)
    seconds = [s for _, s, _ in results]
    final = stored_n(clean_redis, cookie)
    figure(
        "K2-lock-asgi",
        requests=PARALLEL,
        final=final,
        lost=PARALLEL - final,
        max_seconds=max(seconds),
        median_seconds=statistics.median(seconds),
        lock_timeout=timeout,
    )
    assert [status for status, _, _ in results] == [200] * PARALLEL
    assert final == PARALLEL
    assert sorted(int(body.split(":")[1].rstrip("}")) for _, _, body in results) == list(
        range(1, PARALLEL + 1)
    )  # applied one after the other
    assert max(seconds) < timeout + 1  # a waiter gives up at the bound; none had to
    assert clean_redis.exists(f"sess:{{{handle_for(cookie.rsplit('.', 1)[0])}}}:lock") == 0


def test_k2_lock_serializes_50_parallel_read_modify_writes_wsgi(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    timeout = 5.0
    store = RedisStore(connect(redis_url))
    app = WSGISessions(
        wsgi_app,
        store,
        secret=SECRET,
        lock=lambda path: path == "/incr",
        lock_timeout=timeout,
        lock_waiters=PARALLEL,
    )
    with wsgi_serving(app) as base:
        cookie = new_cookie(base)
        results = threaded_gets(base, "/incr", cookie)
    store.close()
    seconds = [s for _, s, _ in results]
    final = stored_n(clean_redis, cookie)
    figure(
        "K2-lock-wsgi",
        requests=PARALLEL,
        final=final,
        lost=PARALLEL - final,
        max_seconds=max(seconds),
        median_seconds=statistics.median(seconds),
        lock_timeout=timeout,
    )
    assert [status for status, _, _ in results] == [200] * PARALLEL
    assert final == PARALLEL
    assert max(seconds) < timeout + 1


@pytest.mark.anyio
async def test_setdefault_first_writer_wins_over_http(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    with uvicorn_serving(asgi_sessions(redis_url)) as base:
        cookie = new_cookie(base)
        limits = httpx.Limits(max_connections=20, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=base, limits=limits) as http:
            responses = await asyncio.gather(
                *(
                    http.get(f"/first?v=v{i}", headers={"cookie": f"session={cookie}"})
                    for i in range(20)
                )
            )
            winners = {r.json()["first"] for r in responses}
            stored = (await http.get("/get", headers={"cookie": f"session={cookie}"})).json()
    assert len(winners) == 1  # every request saw the same winner after its save
    assert stored["first"] in winners


@pytest.mark.anyio
async def test_lock_is_per_route_and_a_timeout_is_a_503_naming_the_lock(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    gate = Gate()
    store = AsyncRedisStore(connect_async(redis_url))
    app = ASGISessions(
        asgi_app(gate),
        store,
        secret=SECRET,
        lock=["/slow", "/incr"],
        lock_timeout=0.3,
        retry_after=7,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        cookie = (await http.get("/set?start=1")).cookies["session"]
        http.cookies.clear()
        headers = {"cookie": "session=" + cookie}
        slow = asyncio.create_task(http.get("/slow", headers=headers))
        await gate.entered.wait()  # /slow holds the lock now
        assert (await http.get("/get", headers=headers)).status_code == 200  # not locked
        started = time.monotonic()
        busy = await http.get("/incr", headers=headers)
        waited = time.monotonic() - started
        assert busy.status_code == 503
        assert busy.content == LOCKED_BODY and busy.headers["retry-after"] == "7"
        assert 0.3 <= waited < 1.5
        gate.release.set()
        assert (await slow).status_code == 200
        assert (await http.get("/incr", headers=headers)).status_code == 200
        assert (await http.get("/get", headers=headers)).json() == {
            "start": "1",
            "n": 1,
            "late": "write",
        }
    await store.aclose()


@pytest.mark.anyio
async def test_save_after_the_lock_expired_is_a_503_and_writes_nothing(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    gate = Gate()
    store = AsyncRedisStore(connect_async(redis_url))
    app = ASGISessions(asgi_app(gate), store, secret=SECRET, lock=True, lock_ttl=0.3)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        cookie = (await http.get("/set?start=1")).cookies["session"]
        http.cookies.clear()
        headers = {"cookie": "session=" + cookie}
        lock_key = f"sess:{{{handle_for(cookie.rsplit('.', 1)[0])}}}:lock"
        slow = asyncio.create_task(http.get("/slow", headers=headers))
        await gate.entered.wait()
        assert clean_redis.exists(lock_key) == 1
        await asyncio.to_thread(wait_until, lambda: clean_redis.exists(lock_key) == 0, 5)
        gate.release.set()
        late = await slow
        assert late.status_code == 503 and late.content == LOCKED_BODY
        assert (await http.get("/get", headers=headers)).json() == {"start": "1"}  # no "late"
    await store.aclose()


@pytest.mark.anyio
async def test_lock_is_released_when_the_app_raises(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    store = AsyncRedisStore(connect_async(redis_url))
    app = ASGISessions(asgi_app(), store, secret=SECRET, lock=True, lock_timeout=0)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        cookie = (await http.get("/set?start=1")).cookies["session"]
        http.cookies.clear()
        headers = {"cookie": "session=" + cookie}
        assert (await http.get("/boom", headers=headers)).status_code == 500
        lock_key = f"sess:{{{handle_for(cookie.rsplit('.', 1)[0])}}}:lock"
        assert clean_redis.exists(lock_key) == 0
        assert (await http.get("/incr", headers=headers)).status_code == 200  # no wait
    await store.aclose()


def test_wsgi_lock_is_released_when_the_app_raises(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    store = RedisStore(connect(redis_url))
    app = WSGISessions(wsgi_app, store, secret=SECRET, lock=True, lock_timeout=0)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as http:
        cookie = http.get("/set?start=1").cookies["session"]
        http.cookies.clear()
        headers = {"cookie": "session=" + cookie}
        with pytest.raises(RuntimeError, match="the app failed"):
            http.get("/boom", headers=headers)  # the WSGI server would answer 500
        assert clean_redis.exists(f"sess:{{{handle_for(cookie.rsplit('.', 1)[0])}}}:lock") == 0
        assert http.get("/incr", headers=headers).status_code == 200
    store.close()


@pytest.mark.anyio
async def test_lock_round_trips(redis_url: str, clean_redis: redis.Redis) -> None:
    store = AsyncRedisStore(connect_async(redis_url))
    app = ASGISessions(asgi_app(), store, secret=SECRET, lock=["/incr", "/get"])
    trips = RoundTrips(store)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        cookie = (await http.get("/set?start=1")).cookies["session"]
        http.cookies.clear()
        headers = {"cookie": "session=" + cookie}
        trips.take()
        await http.get("/get", headers=headers)
        locked_read = trips.take()
        await http.get("/incr", headers=headers)
        locked_write = trips.take()
        await http.get("/set?x=1", headers=headers)  # not a locked route
        unlocked_write = trips.take()
        await http.get("/untouched", headers=headers)
        untouched = trips.take()
    await store.aclose()
    figure(
        "LOCK-round-trips",
        locked_read=locked_read,
        locked_write=locked_write,
        unlocked_write=unlocked_write,
    )
    assert (locked_read, locked_write, unlocked_write, untouched) == (2, 2, 2, 1)


@pytest.mark.anyio
async def test_a_burst_beyond_the_connection_pool_waits_instead_of_failing(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    store = AsyncRedisStore(connect_async(redis_url, ConnectOptions(max_connections=4)))
    app = ASGISessions(asgi_app(on_shutdown=store.aclose), store, secret=SECRET)
    with uvicorn_serving(app) as base:
        cookie = new_cookie(base)
        results = await parallel_gets(base, "/count", cookie, n=100)
        clients = int(clean_redis.info("clients")["connected_clients"])
    assert [status for status, _, _ in results] == [200] * 100
    assert stored_n(clean_redis, cookie) == 100
    assert clients <= 4 + 1  # the pool's 4 and this test's own connection


def test_wsgi_lock_with_a_lazy_body_is_released_by_the_save_or_by_close(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    def lazy_app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        session = get_session(environ)
        session["n"] = session.get("n", 0) + 1  # loads: takes the lock

        def body() -> Iterator[bytes]:
            start_response("200 OK", [("Content-Type", "text/plain")])  # saves: frees it
            yield b"ok"

        return body()

    store = RedisStore(connect(redis_url))
    app = WSGISessions(lazy_app, store, secret=SECRET, lock=True, lock_timeout=0)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as http:
        cookie = http.get("/").cookies["session"]
        http.cookies.clear()
        headers = {"cookie": "session=" + cookie}
        assert http.get("/", headers=headers).status_code == 200
        assert http.get("/", headers=headers).status_code == 200  # the lock was free again
    lock_key = f"sess:{{{handle_for(cookie.rsplit('.', 1)[0])}}}:lock"
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "HTTP_COOKIE": f"session={cookie}",
        "wsgi.url_scheme": "http",
    }
    body = app(environ, lambda status, headers, exc_info=None: None)
    assert clean_redis.exists(lock_key) == 1  # the app ran and holds it; nothing sent yet
    assert hasattr(body, "close")  # PEP 3333: the server calls it, iterated or not
    body.close()  # the client went away before the body was iterated
    assert clean_redis.exists(lock_key) == 0
    assert stored_n(clean_redis, cookie) == 3  # that last request's change was never saved
    store.close()
