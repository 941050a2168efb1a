"""FastAPI: the example app, lazy loading, dependencies, websocket, round trips, store down."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.requests import Request

from redis_sessions import AsyncRedisStore, ConnectOptions, SessionStateError, connect_async
from redis_sessions.asgi import SessionMiddleware, get_session
from tests.support.servers import RoundTrips

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from examples.fastapi_app.app import create_app

SECRET = "fastapi-test-secret-0123456789"
FAST_FAIL = ConnectOptions(socket_timeout=0.5, socket_connect_timeout=0.25, retries=1)


@pytest.fixture
def store(redis_url: str, clean_redis: redis.Redis) -> AsyncRedisStore:
    return AsyncRedisStore(connect_async(redis_url))


def test_login_regenerates_logout_destroys_and_api_needs_login(
    store: AsyncRedisStore, clean_redis: redis.Redis
) -> None:
    with TestClient(create_app(store, SECRET)) as client:
        assert client.get("/").json() == {"views": 1}
        before = client.cookies["session"]
        assert client.get("/api/me").status_code == 401
        assert client.post("/login", params={"user": "ada"}).json() == {"user": "ada"}
        after = client.cookies["session"]
        assert after.split(".")[0] != before.split(".")[0]
        assert client.get("/api/me").json() == {"user": "ada"}
        assert client.get("/").json() == {"views": 2}  # data kept across the login
        assert len(list(clean_redis.scan_iter(match="sess:*"))) == 1
        client.cookies.clear()
        assert client.get("/api/me", headers={"cookie": f"session={before}"}).status_code == 401
        client.cookies.set("session", after)
        client.post("/logout")
        assert list(clean_redis.scan_iter(match="sess:*")) == []
        assert client.get("/api/me").status_code == 401


def test_lazy_route_without_the_dependency_costs_no_round_trip(store: AsyncRedisStore) -> None:
    counted = RoundTrips(store)
    with TestClient(create_app(store, SECRET)) as client:
        client.get("/")
        counted.count = 0
        assert client.get("/health").json() == {"status": "ok"}
        assert counted.count == 0
        assert client.get("/api/me").status_code == 401
        assert counted.count == 1  # the read, only for the route that asked for it
        counted.count = 0
        client.get("/")
        assert counted.count == 2  # read + save


def test_websocket_route_gets_the_session(store: AsyncRedisStore) -> None:
    with TestClient(create_app(store, SECRET)) as client:
        client.post("/login", params={"user": "bob"})
        with client.websocket_connect("/ws") as ws:
            assert ws.receive_json() == {"user": "bob"}


def test_sync_access_to_an_unloaded_lazy_session_is_a_clear_error(
    store: AsyncRedisStore,
) -> None:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await store.aclose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/bad")
    async def bad(request: Request) -> dict[str, Any]:
        return dict(get_session(request))  # no dependency, no aload(): a developer error

    app.add_middleware(SessionMiddleware, store=store, secret=SECRET, lazy=True)
    with TestClient(create_app(store, SECRET)) as setup:
        setup.get("/")
        cookie = setup.cookies["session"]
    with TestClient(app) as client, pytest.raises(SessionStateError, match="not loaded yet"):
        client.get("/bad", headers={"cookie": f"session={cookie}"})


def test_store_down_is_503_with_retry_after(make_server: Any) -> None:
    server = make_server(appendonly=False)
    store = AsyncRedisStore(connect_async(server.url, FAST_FAIL))
    with TestClient(create_app(store, SECRET)) as client:
        client.get("/")
        server.kill()
        response = client.get("/")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert client.get("/health").status_code == 200  # lazy: no session, no Redis
