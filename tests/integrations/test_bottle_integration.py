"""Bottle through the generic WSGI middleware: the example app against a real server.

Bottle has no test client of its own; httpx's WSGI transport drives the app in process.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import redis

from redis_sessions import RedisStore, connect
from redis_sessions.engine import handle_for
from tests.integrations.flaskkit import SECRET, RoundTrips, cookie_attrs, example, sync_store

create_app = example("bottle_app.app").create_app


def client_for(store: RedisStore, **options: Any) -> httpx.Client:
    transport = httpx.WSGITransport(app=create_app(store, SECRET, **options))
    return httpx.Client(transport=transport, base_url="http://testserver")


def key_of(cookie: str) -> bytes:
    return f"sess:{{{handle_for(cookie.split('.', 1)[0])}}}".encode()


@pytest.fixture
def store(redis_url: str, clean_redis: redis.Redis) -> RedisStore:
    return RedisStore(connect(redis_url))


def test_example_counter_login_regenerate_api_logout(
    store: RedisStore, clean_redis: redis.Redis
) -> None:
    with client_for(store) as client, client_for(store) as other:
        assert client.get("/").json() == {"views": 1}
        assert client.get("/").json() == {"views": 2}
        before = client.cookies["session"]
        assert client.get("/api/me").status_code == 401
        assert client.post("/login").status_code == 400

        assert client.post("/login", data={"user": "alice"}).json() == {"user": "alice"}
        after = client.cookies["session"]
        assert after.split(".")[0] != before.split(".")[0]
        assert not clean_redis.exists(key_of(before))
        other.cookies.set("session", before)
        assert other.get("/api/me").status_code == 401  # the old id stops working
        assert client.get("/api/me").json() == {"user": "alice", "views": 2}

        response = client.post("/logout")
        assert response.json() == {"ok": True}
        assert cookie_attrs(response.headers["set-cookie"])["max-age"] == "0"
        assert list(clean_redis.scan_iter(match="sess:*")) == []
        assert client.get("/api/me").status_code == 401
        assert client.get("/health").json() == {"status": "ok"}


BUDGET = [
    ("untouched with cookie", "GET", "/health", 200, 0),
    ("tampered cookie", "GET", "/api/me", 401, 0),
    ("read", "GET", "/api/me", 200, 1),
    ("modify", "GET", "/", 200, 2),
    ("destroy", "POST", "/logout", 200, 2),
]


@pytest.mark.parametrize(
    ("what", "method", "path", "status", "trips"), BUDGET, ids=[b[0] for b in BUDGET]
)
def test_round_trip_budget(
    store: RedisStore, what: str, method: str, path: str, status: int, trips: int
) -> None:
    with client_for(store) as client:
        client.post("/login", params={"user": "alice"})
        client.get("/api/me")  # scripts cached
        if what == "tampered cookie":
            tampered = client.cookies["session"][:-2] + "xx"
            client.cookies.clear()
            client.cookies.set("session", tampered)
        counter = RoundTrips(store)
        assert client.request(method, path).status_code == status
        assert counter.take() == trips
        client.cookies.clear()
        client.get("/health")
        assert counter.take() == 0  # untouched without cookie
        client.get("/")
        assert counter.take() == 1  # new and written


def assert_503(response: httpx.Response) -> None:
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "set-cookie" not in response.headers


@pytest.mark.faults
def test_store_down_is_503_with_retry_after(make_server: Any) -> None:
    server = make_server(appendonly=False)
    with client_for(sync_store(server.url)) as client:
        client.post("/login", params={"user": "alice"})
        cookie = client.cookies["session"]
        server.kill()
        assert_503(client.get("/api/me"))  # the load fails inside the route: the plugin
        assert_503(client.post("/logout"))
        client.cookies.clear()
        assert_503(client.get("/"))  # the save fails after the route: the middleware
        assert client.get("/health", headers={"cookie": f"session={cookie}"}).status_code == 200


@pytest.mark.faults
def test_anonymous_fallback(make_server: Any) -> None:
    server = make_server(appendonly=False)
    with client_for(sync_store(server.url), on_unavailable="anonymous") as client:
        client.post("/login", params={"user": "alice"})
        server.kill()
        response = client.get("/api/me")
        assert response.status_code == 401  # an empty session: not logged in, no error
        assert "set-cookie" not in response.headers
