"""Quart through `redis_sessions.quart.RedisSessions`: ``quart.session`` on a real server, the
example app, round trips, Redis down, test contexts that bypass ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, NoReturn

import pytest
import redis
from quart import Quart, request, session, websocket

from redis_sessions import ConfigError, SessionConfig, StoreUnavailableError
from redis_sessions.quart import QuartSession, RedisSessions, get_session
from tests.integrations.asgikit import SECRET, RoundTrips, assert_503, example, make_store, stored

create_app = example("quart_app").create_app


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def cookie(client: Any) -> str:
    values = [c.value for c in client.cookie_jar if c.name == "session"]
    assert len(values) == 1
    return values[0]


async def get_json(client: Any, path: str, **kwargs: Any) -> Any:
    response = await client.get(path, **kwargs)
    return response.status_code, await response.get_json()


@pytest.fixture
async def served(redis_url: str, clean_redis: redis.Redis) -> AsyncIterator[tuple[Any, Any]]:
    store = make_store(redis_url)
    trips = RoundTrips(store)
    async with create_app(store, SECRET).test_app() as app:
        yield app.test_client(), trips


@pytest.mark.anyio
async def test_counter_login_regenerates_logout_destroys(
    served: tuple[Any, Any], clean_redis: redis.Redis
) -> None:
    client, _ = served
    assert await get_json(client, "/") == (200, {"views": 1})  # create
    assert await get_json(client, "/") == (200, {"views": 2})  # read + modify
    anonymous = cookie(client)
    assert (await client.get("/api/me")).status_code == 401

    response = await client.post("/login", query_string={"user": "ada"})
    assert await response.get_json() == {"user": "ada"}
    logged_in = cookie(client)
    assert logged_in.split(".")[0] != anonymous.split(".")[0]
    assert not stored(clean_redis, anonymous)  # the pre-login id is gone from Redis
    assert await get_json(client, "/api/me") == (200, {"user": "ada"})
    assert await get_json(client, "/") == (200, {"views": 3})  # data kept across the login

    replay = {"cookie": f"session={anonymous}"}
    other = served[0].app.test_client()  # no cookie jar content
    assert (await other.get("/api/me", headers=replay)).status_code == 401  # old id not adopted
    assert await get_json(other, "/", headers=replay) == (200, {"views": 1})
    assert cookie(other).split(".")[0] != anonymous.split(".")[0]

    response = await client.post("/logout")  # session.destroy()
    assert response.status_code == 200
    assert response.headers["set-cookie"].startswith("session=;")
    assert not stored(clean_redis, logged_in)
    assert list(client.cookie_jar) == []
    assert (
        await other.get("/api/me", headers={"cookie": f"session={logged_in}"})
    ).status_code == 401


@pytest.mark.anyio
async def test_round_trips(served: tuple[Any, Any]) -> None:
    client, trips = served
    assert (await client.get("/health")).status_code == 200
    assert (await client.get("/api/me")).status_code == 401
    assert trips.take() == 0  # no cookie, nothing written: no Redis call at all
    await client.get("/")
    assert trips.take() == 1  # new session written
    await client.get("/api/me")
    assert trips.take() == 1  # read (TTL refresh included)
    await client.get("/")
    assert trips.take() == 2  # read + write of the changed key
    await client.get("/health")
    assert trips.take() == 1  # loaded before Quart runs whenever a valid cookie is present


def api_app(store: Any, **options: Any) -> Quart:
    app = Quart(__name__)
    RedisSessions(app, store, secret=SECRET, **options)

    @app.after_serving
    async def close() -> None:
        await store.aclose()

    @app.get("/get")
    async def read() -> dict[str, Any]:
        return {**session, "_new": session.new, "_permanent": session.permanent}

    @app.get("/set")
    async def write() -> dict[str, Any]:
        session.update(request.args.to_dict())
        return dict(session)

    @app.get("/clear")
    async def clear() -> dict[str, Any]:
        session.clear()
        return dict(session)

    @app.get("/nested")
    async def nested() -> dict[str, Any]:
        session.setdefault("cart", []).append(request.args["item"])
        return dict(session)

    @app.get("/typed")
    async def typed() -> dict[str, Any]:
        current = get_session()
        current.touch()
        with pytest.raises(ValueError, match="persist=False"):
            current.permanent = False
        current.permanent = True  # the configured value: accepted
        current.modified = True  # Flask's idiom: forces a full write
        assert current.modified and current.session.is_modified
        current.modified = False  # no effect: the session still knows it must write
        current["extra"] = 1
        await current.areload()  # drops the unsaved change
        current.mark_modified("a")
        return {
            "id": current.id == current.session.id,
            "repr": repr(current)[:13],
            "len": len(current),
            "extra": "extra" in current,
        }

    @app.get("/boom")
    async def boom() -> NoReturn:
        raise StoreUnavailableError("test")

    @app.websocket("/ws")
    async def ws() -> None:
        await websocket.accept()
        await websocket.send_json(dict(session))

    return app


@pytest.fixture
async def api(redis_url: str, clean_redis: redis.Redis) -> AsyncIterator[Any]:
    async with api_app(make_store(redis_url)).test_app() as app:
        yield app.test_client()


@pytest.mark.anyio
async def test_flask_style_session_api(api: Any, clean_redis: redis.Redis) -> None:
    assert await get_json(api, "/get") == (200, {"_new": True, "_permanent": True})
    await api.get("/set", query_string={"a": "1"})
    assert await get_json(api, "/get") == (200, {"a": "1", "_new": False, "_permanent": True})
    await api.get("/nested", query_string={"item": "x"})
    await api.get("/nested", query_string={"item": "y"})  # nested change, no session.modified
    assert (await get_json(api, "/get"))[1]["cart"] == ["x", "y"]
    assert await get_json(api, "/typed") == (
        200,
        {"id": True, "repr": "<QuartSession", "len": 2, "extra": False},
    )

    value = cookie(api)
    response = await api.get("/clear")  # emptied: deleted, as Quart's own sessions do
    assert response.headers["set-cookie"].startswith("session=;")
    assert not stored(clean_redis, value)


@pytest.mark.anyio
async def test_session_transaction_and_test_request_context(api: Any) -> None:
    await api.get("/set", query_string={"a": "1"})
    async with api.session_transaction() as txn:  # bypasses ASGI: loaded and saved here
        assert isinstance(txn, QuartSession)
        assert dict(txn) == {"a": "1"}
        txn["user"] = "ada"
    assert (await get_json(api, "/get"))[1]["user"] == "ada"

    old_value = cookie(api)
    async with api.session_transaction() as txn:
        txn.regenerate()
    new_value = cookie(api)
    assert new_value.split(".")[0] != old_value.split(".")[0]
    assert (await get_json(api, "/get"))[1]["user"] == "ada"
    assert cookie(api) == new_value

    app = api.app
    api.cookie_jar.clear()  # one Cookie header per cookie, ours second
    api.set_cookie("localhost", "other", "x")
    api.set_cookie("localhost", "session", new_value)
    async with api.session_transaction() as txn:
        assert txn["user"] == "ada"
    async with app.test_request_context("/", headers={"cookie": f"session={new_value}"}):
        assert session["user"] == "ada"
        get_session()["ctx"] = 1
        await get_session().asave()  # explicit save works outside ASGI too
    assert (await get_json(api, "/get"))[1]["ctx"] == 1


@pytest.mark.anyio
async def test_store_down_is_503_with_retry_after(make_server: Any) -> None:
    server = make_server(appendonly=False)
    async with api_app(make_store(server.url)).test_app() as app:
        client = app.test_client()
        assert (await client.get("/set", query_string={"a": "1"})).status_code == 200
        server.kill()
        response = await client.get("/get")  # the load fails
        assert_503(response.status_code, response.headers)
        fresh = app.test_client()
        response = await fresh.get("/set", query_string={"b": "2"})  # a new visitor's save
        assert_503(response.status_code, response.headers)


@pytest.mark.anyio
async def test_store_error_raised_in_a_view_is_503(api: Any) -> None:
    response = await api.get("/boom")
    assert_503(response.status_code, response.headers)
    assert (await response.get_data(as_text=True)).startswith("Session store unavailable")


@pytest.mark.anyio
async def test_anonymous_mode_serves_an_empty_session_when_down(make_server: Any) -> None:
    server = make_server(appendonly=False)
    async with api_app(make_store(server.url), on_unavailable="anonymous").test_app() as app:
        client = app.test_client()
        await client.get("/set", query_string={"a": "1"})
        server.kill()
        response = await client.get("/get")
        assert response.status_code == 200
        assert await response.get_json() == {"_new": True, "_permanent": True}
        assert "set-cookie" not in response.headers


@pytest.mark.anyio
async def test_websocket_sees_the_session(api: Any) -> None:
    await api.get("/set", query_string={"user": "ada"})
    async with api.websocket("/ws") as ws:
        assert await ws.receive_json() == {"user": "ada"}


@pytest.mark.anyio
async def test_init_app_with_a_config(redis_url: str, clean_redis: redis.Redis) -> None:
    bare = Quart(__name__)
    async with bare.test_request_context("/"):
        with pytest.raises(LookupError, match="RedisSessions"):
            get_session()  # Quart's own cookie session is not ours

    store = make_store(redis_url)
    sessions = RedisSessions(store=store, config=SessionConfig(secret=SECRET))
    app = Quart(__name__)
    sessions.init_app(app)
    assert sessions.config.unset == "keep"  # an explicit config is taken as it is

    @app.get("/")
    async def home() -> dict[str, int]:
        session["n"] = session.get("n", 0) + 1
        return {"n": session["n"]}

    async with app.test_app() as served:
        client = served.test_client()
        assert await get_json(client, "/") == (200, {"n": 1})
        assert await get_json(client, "/") == (200, {"n": 2})
    await store.aclose()


def test_the_apps_secret_key_signs_when_no_secret_is_given(redis_url: str) -> None:
    app = Quart(__name__)
    with pytest.raises(ConfigError, match="secret"):
        RedisSessions(app, make_store(redis_url))
    app.secret_key = SECRET
    sessions = RedisSessions(app, make_store(redis_url))
    assert sessions.config.secret == SECRET
    assert sessions.config.unset == "destroy"
