"""K1, K3, K5: concurrent requests on one session, over real HTTP-level concurrency."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis
from apps import SECRET, Gate, asgi_app, wsgi_app

from redis_sessions import AsyncRedisStore, RedisStore, connect, connect_async
from redis_sessions.asgi import SessionMiddleware as ASGISessions
from redis_sessions.wsgi import SessionMiddleware as WSGISessions


def session_keys(r: redis.Redis) -> list[bytes]:
    return list(r.scan_iter(match="sess:*"))


@pytest.mark.anyio
async def test_k1_asgi_50_parallel_writes_of_different_keys_all_survive(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    store = AsyncRedisStore(connect_async(redis_url))
    app = ASGISessions(asgi_app(), store, secret=SECRET)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as http:
        cookie = (await http.get("/set?start=1")).cookies["session"]
        http.cookies.clear()
        headers = {"cookie": "session=" + cookie}
        responses = await asyncio.gather(
            *(http.get(f"/set?k{i}={i}", headers=headers) for i in range(50))
        )
        assert all(r.status_code == 200 for r in responses)
        data = (await http.get("/get", headers=headers)).json()
    await store.aclose()
    assert {k: v for k, v in data.items() if k != "start"} == {f"k{i}": str(i) for i in range(50)}


def test_k1_wsgi_50_parallel_writes_of_different_keys_all_survive(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    app = WSGISessions(wsgi_app, RedisStore(connect(redis_url)), secret=SECRET)
    transport = httpx.WSGITransport(app=app)
    with httpx.Client(transport=transport, base_url="http://t") as http:
        cookie = http.get("/set?start=1").cookies["session"]
    headers = {"cookie": "session=" + cookie}
    barrier = threading.Barrier(10)

    def hit(i: int) -> int:
        with httpx.Client(transport=transport, base_url="http://t") as c:
            if i < 10:
                barrier.wait(timeout=10)
            return c.get(f"/set?k{i}={i}", headers=headers).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        assert set(pool.map(hit, range(50))) == {200}
    with httpx.Client(transport=transport, base_url="http://t") as http:
        data = http.get("/get", headers=headers).json()
    assert {k: v for k, v in data.items() if k != "start"} == {f"k{i}": str(i) for i in range(50)}


@pytest.mark.anyio
async def test_k3_save_after_concurrent_logout_does_not_resurrect(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    gate = Gate()
    store = AsyncRedisStore(connect_async(redis_url))
    app = ASGISessions(asgi_app(gate), store, secret=SECRET)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as http:
        cookie = (await http.get("/login?user=alice")).cookies["session"]
        http.cookies.clear()
        headers = {"cookie": "session=" + cookie}
        slow = asyncio.create_task(http.get("/slow", headers=headers))
        await asyncio.wait_for(gate.entered.wait(), 5)
        logout = await http.get("/logout", headers=headers)
        assert "Max-Age=0" in logout.headers["set-cookie"]
        gate.release.set()
        late = await slow
        assert late.status_code == 200
        # The late response must not hand the old id back, nor any new id.
        assert "Max-Age=0" in late.headers["set-cookie"]
        assert (await http.get("/get", headers=headers)).json() == {}
    await store.aclose()
    assert session_keys(clean_redis) == []


@pytest.mark.anyio
async def test_k5_200_concurrent_first_visits_create_nothing(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    store = AsyncRedisStore(connect_async(redis_url))
    app = ASGISessions(asgi_app(), store, secret=SECRET)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as http:
        responses = await asyncio.gather(*(http.get("/get") for _ in range(200)))
    await store.aclose()
    assert all(r.status_code == 200 and "set-cookie" not in r.headers for r in responses)
    assert session_keys(clean_redis) == []


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis.asyncio runs on asyncio only


