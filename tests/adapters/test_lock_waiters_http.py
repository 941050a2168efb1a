"""L7 over HTTP: requests beyond `lock_waiters` for one session get the lock's 503 at once."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import redis

from redis_sessions import AsyncRedisStore, connect_async
from redis_sessions._adapter import LOCKED_BODY
from redis_sessions.asgi import SessionMiddleware as ASGISessions
from tests.adapters.apps import SECRET, Gate, asgi_app


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_requests_beyond_the_waiter_bound_answer_503_at_once(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    gate = Gate()
    store = AsyncRedisStore(connect_async(redis_url))
    app = ASGISessions(
        asgi_app(gate),
        store,
        secret=SECRET,
        lock=["/slow", "/incr"],
        lock_timeout=30,
        lock_waiters=3,
        retry_after=7,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=60
    ) as http:
        cookie = (await http.get("/set?start=1")).cookies["session"]
        http.cookies.clear()
        headers = {"cookie": "session=" + cookie}
        slow = asyncio.create_task(http.get("/slow", headers=headers))
        await gate.entered.wait()  # /slow holds the lock now
        waiters = [asyncio.create_task(http.get("/incr", headers=headers)) for _ in range(3)]
        layout = store.layout
        while sum(len(v) for v in layout._waiters._waiting.values()) < 3:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        extra = await asyncio.gather(*(http.get("/incr", headers=headers) for _ in range(4)))
        assert time.monotonic() - started < 5  # not lock_timeout (30 s)
        assert [r.status_code for r in extra] == [503] * 4
        assert all(r.content == LOCKED_BODY and r.headers["retry-after"] == "7" for r in extra)
        gate.release.set()
        assert (await slow).status_code == 200
        assert [r.status_code for r in await asyncio.gather(*waiters)] == [200] * 3
        assert (await http.get("/get", headers=headers)).json()["n"] == 3
    await store.aclose()
