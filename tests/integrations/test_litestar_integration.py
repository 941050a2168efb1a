"""Litestar through `redis_sessions.litestar.RedisSessions`: the example app on a real server,
Litestar's own session API, round trips, Redis down."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import redis
from litestar import Litestar, Request, WebSocket, get, websocket
from litestar.testing import TestClient

from redis_sessions import StoreUnavailableError
from redis_sessions.litestar import RedisSessions
from tests.integrations.asgikit import SECRET, RoundTrips, assert_503, example, make_store, stored

create_app = example("litestar_app").create_app


@pytest.fixture
def client(redis_url: str, clean_redis: redis.Redis) -> Any:
    store = make_store(redis_url)
    http: Any = TestClient(create_app(store, SECRET))  # with a round-trip counter, below
    with http:
        http.trips = RoundTrips(store)
        yield http


def test_counter_login_regenerates_logout_destroys(client: Any, clean_redis: redis.Redis) -> None:
    assert client.get("/").json() == {"views": 1}  # create
    assert client.get("/").json() == {"views": 2}  # read + modify
    anonymous = client.cookies["session"]
    assert client.get("/api/me").status_code == 401

    assert client.post("/login", params={"user": "ada"}).json() == {"user": "ada"}
    logged_in = client.cookies["session"]
    assert logged_in.split(".")[0] != anonymous.split(".")[0]
    assert not stored(clean_redis, anonymous)  # the pre-login id is gone from Redis
    assert client.get("/api/me").json() == {"user": "ada"}
    assert client.get("/").json() == {"views": 3}  # data kept across the login

    client.cookies.clear()
    replay = {"cookie": f"session={anonymous}"}
    assert client.get("/api/me", headers=replay).status_code == 401  # old id: not adopted
    assert client.get("/", headers=replay).json() == {"views": 1}
    assert client.cookies["session"].split(".")[0] != anonymous.split(".")[0]

    client.cookies.clear()
    client.cookies.set("session", logged_in)
    response = client.post("/logout")  # request.clear_session()
    assert response.status_code == 200
    assert response.headers["set-cookie"].startswith("session=;")
    assert not stored(clean_redis, logged_in)
    assert client.get("/api/me", headers={"cookie": f"session={logged_in}"}).status_code == 401


def test_round_trips(client: Any) -> None:
    trips = client.trips
    assert client.get("/health").status_code == 200
    assert client.get("/api/me").status_code == 401
    assert trips.take() == 0  # no cookie, nothing written: no Redis call at all
    client.get("/")
    assert trips.take() == 1  # new session written
    client.get("/api/me")
    assert trips.take() == 1  # read (TTL refresh included)
    client.get("/")
    assert trips.take() == 2  # read + write of the changed key
    client.get("/health")
    assert trips.take() == 1  # the middleware loads when a valid cookie is present


@dataclass
class Profile:
    name: str
    level: int


@get("/get")
async def read(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return dict(request.session)


@get("/set")
async def write(request: Request[Any, Any, Any]) -> dict[str, Any]:
    request.session.update(request.query_params)
    return dict(request.session)


@get("/replace")
async def replace(request: Request[Any, Any, Any]) -> None:
    request.set_session({"replaced": True})


@get("/replace-data")
async def replace_data(request: Request[Any, Any, Any]) -> None:
    request.set_session(Profile("ada", 3))  # Litestar allows dataclasses


@get("/boom")
async def boom() -> None:
    raise StoreUnavailableError("test")


@websocket("/ws")
async def ws(socket: WebSocket[Any, Any, Any]) -> None:
    await socket.accept()
    await socket.send_json(dict(socket.session))
    await socket.close()


def api_app(store: Any, **options: Any) -> Litestar:
    return Litestar(
        [read, write, replace, replace_data, boom, ws],
        plugins=[RedisSessions(store, secret=SECRET, **options)],
        on_shutdown=[store.aclose],
    )


def test_set_session_replaces_the_contents(redis_url: str, clean_redis: redis.Redis) -> None:
    with TestClient(api_app(make_store(redis_url))) as client:
        client.get("/set", params={"a": "1", "b": "2"})
        client.get("/replace")
        assert client.get("/get").json() == {"replaced": True}
        client.get("/replace-data")
        assert client.get("/get").json() == {"name": "ada", "level": 3}


def test_websocket_sees_the_session(redis_url: str, clean_redis: redis.Redis) -> None:
    with TestClient(api_app(make_store(redis_url))) as client:
        client.get("/set", params={"user": "ada"})
        with client.websocket_connect("/ws") as socket:
            assert socket.receive_json() == {"user": "ada"}


def test_store_down_is_503_with_retry_after(make_server: Any) -> None:
    server = make_server(appendonly=False)
    with TestClient(api_app(make_store(server.url))) as client:
        assert client.get("/set", params={"a": "1"}).status_code == 200
        server.kill()
        response = client.get("/get")  # the load fails
        assert_503(response.status_code, response.headers)
        client.cookies.clear()
        response = client.get("/set", params={"b": "2"})  # a new visitor: the save fails
        assert_503(response.status_code, response.headers)


def test_store_error_raised_in_a_handler_is_503(redis_url: str, clean_redis: redis.Redis) -> None:
    with TestClient(api_app(make_store(redis_url))) as client:
        response = client.get("/boom")
        assert_503(response.status_code, response.headers)
        assert response.text.startswith("Session store unavailable")


def test_anonymous_mode_serves_an_empty_session_when_down(make_server: Any) -> None:
    server = make_server(appendonly=False)
    store = make_store(server.url)
    with TestClient(api_app(store, on_unavailable="anonymous")) as client:
        cookie = client.get("/set", params={"a": "1"}).cookies["session"]
        server.kill()
        response = client.get("/get", headers={"cookie": f"session={cookie}"})
        assert response.status_code == 200
        assert response.json() == {}
        assert "set-cookie" not in response.headers
