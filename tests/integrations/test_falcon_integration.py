"""Falcon, WSGI and ASGI, through the generic middlewares: the example apps with Falcon's own
test client (`falcon.testing.TestClient`, `ASGIConductor`) against a real server."""

from __future__ import annotations

from typing import Any

import falcon
import falcon.asgi
import pytest
import redis
from falcon import testing

from redis_sessions import AsyncRedisStore, RedisStore, connect, connect_async
from redis_sessions.asgi import get_session as asgi_session
from redis_sessions.engine import handle_for
from tests.integrations.flaskkit import SECRET, RoundTrips, async_store, example, sync_store

wsgi_example = example("falcon_app.wsgi_app")
asgi_example = example("falcon_app.asgi_app")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def key_of(cookie: str) -> bytes:
    return f"sess:{{{handle_for(cookie.split('.', 1)[0])}}}".encode()


def jar(cookie: str) -> dict[str, str]:
    return {"Cookie": f"session={cookie}"}


def session_cookie(result: testing.Result) -> str:
    return str(result.cookies["session"].value)


def assert_503(result: testing.Result) -> None:
    assert result.status_code == 503
    assert result.headers["retry-after"] == "5"
    assert "session" not in result.cookies


# -- WSGI -----------------------------------------------------------------------------------


@pytest.fixture
def store(redis_url: str, clean_redis: redis.Redis) -> RedisStore:
    return RedisStore(connect(redis_url))


def test_wsgi_example_counter_login_regenerate_api_logout(
    store: RedisStore, clean_redis: redis.Redis
) -> None:
    client = testing.TestClient(wsgi_example.create_app(store, SECRET))
    first = client.simulate_get("/")
    assert first.json == {"views": 1}
    before = session_cookie(first)
    assert client.simulate_get("/", headers=jar(before)).json == {"views": 2}
    assert client.simulate_get("/api/me", headers=jar(before)).status_code == 401
    assert client.simulate_post("/login", headers=jar(before)).status_code == 400

    login = client.simulate_post("/login", params={"user": "alice"}, headers=jar(before))
    assert login.json == {"user": "alice"}
    after = session_cookie(login)
    assert after.split(".")[0] != before.split(".")[0]
    assert not clean_redis.exists(key_of(before))
    assert client.simulate_get("/api/me", headers=jar(before)).status_code == 401
    assert client.simulate_get("/api/me", headers=jar(after)).json == {"user": "alice", "views": 2}
    logout = client.simulate_post("/logout", headers=jar(after))
    assert logout.json == {"ok": True}
    assert logout.cookies["session"].max_age == 0
    assert list(clean_redis.scan_iter(match="sess:*")) == []
    assert client.simulate_get("/api/me", headers=jar(after)).status_code == 401


BUDGET = [
    ("untouched without cookie", "GET", "/health", None, 0),
    ("untouched with cookie", "GET", "/health", "valid", 0),
    ("tampered cookie", "GET", "/api/me", "tampered", 0),
    ("read", "GET", "/api/me", "valid", 1),
    ("modify", "GET", "/", "valid", 2),
    ("new and written", "GET", "/", None, 1),
    ("destroy", "POST", "/logout", "valid", 2),
]


@pytest.mark.parametrize(
    ("what", "method", "path", "cookie", "trips"), BUDGET, ids=[b[0] for b in BUDGET]
)
def test_wsgi_round_trip_budget(
    store: RedisStore, what: str, method: str, path: str, cookie: str | None, trips: int
) -> None:
    client = testing.TestClient(wsgi_example.create_app(store, SECRET))
    valid = session_cookie(client.simulate_post("/login", params={"user": "alice"}))
    client.simulate_get("/api/me", headers=jar(valid))  # scripts cached
    headers = {} if cookie is None else jar(valid if cookie == "valid" else valid[:-2] + "xx")
    counter = RoundTrips(store)
    result = client.simulate_request(method, path, headers=headers)
    assert result.status_code == (401 if cookie == "tampered" else 200)
    assert counter.take() == trips


@pytest.mark.faults
def test_wsgi_store_down_is_503_with_retry_after(make_server: Any) -> None:
    server = make_server(appendonly=False)
    client = testing.TestClient(wsgi_example.create_app(sync_store(server.url), SECRET))
    cookie = session_cookie(client.simulate_post("/login", params={"user": "alice"}))
    server.kill()
    # The load fails inside a responder: the error handler's HTTPServiceUnavailable.
    inside = client.simulate_get("/api/me", headers=jar(cookie))
    assert_503(inside)
    assert inside.json["title"] == "503 Service Unavailable"
    assert_503(client.simulate_post("/logout", headers=jar(cookie)))
    assert_503(client.simulate_get("/"))  # the save fails after the responder: the middleware
    assert client.simulate_get("/health", headers=jar(cookie)).status_code == 200


# -- ASGI -----------------------------------------------------------------------------------


class Reload:
    """A responder whose Redis call happens inside Falcon (areload), not in the middleware;
    `before` runs first (the fault test kills the server there)."""

    def __init__(self) -> None:
        self.before: Any = None

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        session = asgi_session(req.scope)
        if self.before is not None:
            self.before()
        await session.areload()
        resp.media = {"data": dict(session)}


def asgi_app(store: AsyncRedisStore, reload: Reload | None = None, **options: Any) -> Any:
    sessions = asgi_example.create_app(store, SECRET, **options)
    sessions.app.add_route("/reload", reload or Reload())
    return sessions


@pytest.mark.anyio
async def test_asgi_example_counter_login_regenerate_api_logout(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    store = AsyncRedisStore(connect_async(redis_url))
    closed: list[bool] = []
    aclose = store.aclose

    async def spy_aclose() -> None:
        closed.append(True)
        await aclose()

    store.aclose = spy_aclose  # type: ignore[method-assign]
    async with testing.ASGIConductor(asgi_app(store)) as client:
        first = await client.simulate_get("/")
        assert first.json == {"views": 1}
        before = session_cookie(first)
        assert (await client.simulate_get("/", headers=jar(before))).json == {"views": 2}
        assert (await client.simulate_get("/api/me", headers=jar(before))).status_code == 401

        login = await client.simulate_post("/login", params={"user": "alice"}, headers=jar(before))
        assert login.json == {"user": "alice"}
        after = session_cookie(login)
        assert after.split(".")[0] != before.split(".")[0]
        assert not clean_redis.exists(key_of(before))
        assert (await client.simulate_get("/api/me", headers=jar(before))).status_code == 401
        me = await client.simulate_get("/api/me", headers=jar(after))
        assert me.json == {"user": "alice", "views": 2}
        assert (await client.simulate_get("/reload", headers=jar(after))).json == {
            "data": {"views": 2, "user": "alice"}
        }

        logout = await client.simulate_post("/logout", headers=jar(after))
        assert logout.json == {"ok": True}
        assert logout.cookies["session"].max_age == 0
        assert list(clean_redis.scan_iter(match="sess:*")) == []
        assert (await client.simulate_get("/api/me", headers=jar(after))).status_code == 401
    assert closed == [True]  # the example closes its store at lifespan shutdown


# The ASGI middleware reads the session before the app runs whenever the cookie is valid, so
# "untouched with cookie" costs the read (Starlette's request.session is synchronous).
ASGI_BUDGET = [(*b[:4], 1 if b[0] == "untouched with cookie" else b[4]) for b in BUDGET]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("what", "method", "path", "cookie", "trips"), ASGI_BUDGET, ids=[b[0] for b in ASGI_BUDGET]
)
async def test_asgi_round_trip_budget(
    redis_url: str,
    clean_redis: redis.Redis,
    what: str,
    method: str,
    path: str,
    cookie: str | None,
    trips: int,
) -> None:
    store = AsyncRedisStore(connect_async(redis_url))
    async with testing.ASGIConductor(asgi_app(store)) as client:
        valid = session_cookie(await client.simulate_post("/login", params={"user": "alice"}))
        await client.simulate_get("/api/me", headers=jar(valid))  # scripts cached
        headers = {} if cookie is None else jar(valid if cookie == "valid" else valid[:-2] + "x")
        counter = RoundTrips(store)
        result = await client.simulate_request(method, path, headers=headers)
        assert result.status_code == (401 if cookie == "tampered" else 200)
        assert counter.take() == trips


@pytest.mark.anyio
@pytest.mark.faults
async def test_asgi_store_down_is_503_with_retry_after(make_server: Any) -> None:
    server = make_server(appendonly=False)
    async with testing.ASGIConductor(asgi_app(async_store(server.url))) as client:
        cookie = session_cookie(await client.simulate_post("/login", params={"user": "alice"}))
        server.kill()
        assert_503(await client.simulate_get("/api/me", headers=jar(cookie)))  # the middleware
        assert_503(await client.simulate_get("/"))  # the save at response start
        assert (await client.simulate_get("/health")).status_code == 200

    # Redis dies after the middleware's read, under a responder's own call (areload): the
    # error handler's HTTPServiceUnavailable, where Falcon alone would answer 500.
    server.restart()
    reload = Reload()
    async with testing.ASGIConductor(asgi_app(async_store(server.url), reload)) as client:
        cookie = session_cookie(await client.simulate_post("/login", params={"user": "bob"}))
        reload.before = server.kill
        reloaded = await client.simulate_get("/reload", headers=jar(cookie))
    assert_503(reloaded)
    assert reloaded.json["title"] == "503 Service Unavailable"  # Falcon's, not the middleware's


@pytest.mark.anyio
@pytest.mark.faults
async def test_asgi_anonymous_fallback(make_server: Any) -> None:
    server = make_server(appendonly=False)
    app = asgi_app(async_store(server.url), on_unavailable="anonymous")
    async with testing.ASGIConductor(app) as client:
        cookie = session_cookie(await client.simulate_post("/login", params={"user": "alice"}))
        server.kill()
        result = await client.simulate_get("/api/me", headers=jar(cookie))
        assert result.status_code == 401
        assert "session" not in result.cookies
