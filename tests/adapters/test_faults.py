"""Redis down, hung or restarted under the adapters: 503 within budget, recovery without an
app restart, one warning per outage, never a traceback or a host name (F3, F4, I-2..I-4, I-6)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import pytest

from redis_sessions import AsyncRedisStore, connect_async
from redis_sessions.asgi import SessionMiddleware as ASGISessions
from tests.adapters.adapterkit import FAST_FAIL, make_client
from tests.adapters.apps import SECRET, Gate, asgi_app
from tests.support.servers import wait_until

pytestmark = pytest.mark.faults


def assert_clean_503(response: Any, server: Any) -> None:
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    text = response.text + str(response.headers)
    for leak in ("Traceback", "redis.exceptions", "redis_sessions", str(server.port), "127.0.0.1"):
        assert leak not in text


def test_store_down_gives_clean_503_then_recovers_without_restart(
    kind: str, make_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_server(appendonly=True, appendfsync="always")
    http, _ = make_client(kind, server.url, FAST_FAIL)
    with http:
        cookie = http.get("/set?a=1").cookies["session"]
        server.kill()
        caplog.set_level(logging.INFO, logger="redis_sessions")
        for _ in range(5):
            started = time.monotonic()
            response = http.get("/get", headers={"cookie": "session=" + cookie})
            assert time.monotonic() - started < 3
            assert_clean_503(response, server)
        # A new visitor that writes also gets a 503, not a 2xx for a write that was lost.
        http.cookies.clear()
        assert_clean_503(http.get("/set?b=2"), server)
        server.restart()
        wait_until(
            lambda: http.get("/get", headers={"cookie": "session=" + cookie}).status_code == 200,
            5,
            message="no recovery after restart",
        )
        assert http.get("/get", headers={"cookie": "session=" + cookie}).json() == {"a": "1"}
    records = [r for r in caplog.records if r.name == "redis_sessions"]
    assert [r.levelname for r in records] == ["WARNING", "INFO"]


def test_anonymous_fallback_serves_an_unsaved_empty_session(kind: str, make_server: Any) -> None:
    server = make_server(appendonly=False)
    http, _ = make_client(kind, server.url, FAST_FAIL, on_unavailable="anonymous")
    with http:
        cookie = http.get("/set?a=1").cookies["session"]
        server.kill()
        response = http.get("/get", headers={"cookie": "session=" + cookie})
        assert response.status_code == 200
        assert response.json() == {}
        assert "set-cookie" not in response.headers


def test_f3_no_persistence_restart_logs_everyone_out_without_errors(
    kind: str, make_server: Any
) -> None:
    server = make_server(appendonly=False)
    http, _ = make_client(kind, server.url, FAST_FAIL)
    with http:
        old = http.get("/set?a=1").cookies["session"]
        server.kill()
        server.restart()
        http.cookies.clear()
        wait_until(lambda: http.get("/get").status_code == 200, 5)
        response = http.get("/set?b=2", headers={"cookie": "session=" + old})
        assert response.status_code == 200
        new = response.cookies["session"]
        assert new.rsplit(".", 1)[0] != old.rsplit(".", 1)[0]
        http.cookies.clear()
        assert http.get("/get", headers={"cookie": "session=" + new}).json() == {"b": "2"}


def test_f4_stopped_server_gives_503_within_budget_and_recovers(
    kind: str, make_server: Any
) -> None:
    server = make_server(appendonly=False)
    http, _ = make_client(kind, server.url, FAST_FAIL)
    with http:
        cookie = http.get("/set?a=1").cookies["session"]
        headers = {"cookie": "session=" + cookie}
        server.pause()
        try:
            for path in ("/get", "/set?b=2"):
                started = time.monotonic()
                response = http.get(path, headers=headers)
                elapsed = time.monotonic() - started
                print(f"\nF4 {kind} {path}: {response.status_code} after {elapsed:.2f} s")
                assert elapsed < 3
                assert_clean_503(response, server)
        finally:
            server.resume()
        started = time.monotonic()
        wait_until(
            lambda: http.get("/get", headers=headers).status_code == 200,
            2,
            message="no recovery within 2 s of SIGCONT",
        )
        print(f"F4 {kind}: recovered {time.monotonic() - started:.2f} s after SIGCONT")
        assert http.get("/get", headers=headers).json() == {"a": "1"}


@pytest.mark.anyio
async def test_i6_event_loop_keeps_serving_during_a_redis_hang(make_server: Any) -> None:
    server = make_server(appendonly=False)
    store = AsyncRedisStore(connect_async(server.url, FAST_FAIL))
    app = ASGISessions(asgi_app(), store, secret=SECRET)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        cookie = (await http.get("/set?a=1")).cookies["session"]
        http.cookies.clear()
        server.pause()
        try:
            hung = asyncio.create_task(http.get("/get", headers={"cookie": "session=" + cookie}))
            await asyncio.sleep(0)  # let it reach Redis
            for _ in range(5):
                started = time.monotonic()
                assert (await http.get("/health")).status_code == 200
                assert time.monotonic() - started < 0.3  # the hung request takes > 1 s
            assert (await hung).status_code == 503
        finally:
            server.resume()
    await store.aclose()


@pytest.mark.anyio
async def test_save_failing_after_the_app_ran_is_a_503_not_a_lost_2xx(make_server: Any) -> None:
    server = make_server(appendonly=False)
    gate = Gate()
    store = AsyncRedisStore(connect_async(server.url, FAST_FAIL))
    app = ASGISessions(asgi_app(gate), store, secret=SECRET)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        cookie = (await http.get("/set?a=1")).cookies["session"]
        http.cookies.clear()
        slow = asyncio.create_task(http.get("/slow", headers={"cookie": "session=" + cookie}))
        await asyncio.wait_for(gate.entered.wait(), 5)
        server.kill()
        gate.release.set()
        response = await slow
    await store.aclose()
    assert_clean_503(response, server)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
