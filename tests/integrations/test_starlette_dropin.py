"""The drop-in for Starlette's SessionMiddleware: each difference the README documents.

With Starlette's spelling (``secret_key=``) the middleware behaves as Starlette's: 14 days of
inactivity, the cookie re-sent on every response, ``session.clear()`` deletes the session.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
from starlette.applications import Starlette
from starlette.middleware.sessions import SessionMiddleware as StarletteSessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from redis_sessions import AsyncRedisStore, connect_async
from redis_sessions.asgi import SessionMiddleware
from tests.support.servers import RoundTrips

SECRET = "starlette-dropin-secret-0123456789"
DAYS_14 = 14 * 86400


async def login(request: Request) -> JSONResponse:
    request.session["user"] = "ada"
    return JSONResponse({})


async def me(request: Request) -> JSONResponse:
    return JSONResponse({"user": request.session.get("user")})


async def logout(request: Request) -> JSONResponse:
    request.session.clear()  # Starlette's logout idiom
    return JSONResponse({})


ROUTES = [Route("/login", login), Route("/me", me), Route("/logout", logout)]


def app_with(store: AsyncRedisStore, **options: Any) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await store.aclose()

    app = Starlette(routes=ROUTES, lifespan=lifespan)
    app.add_middleware(SessionMiddleware, store=store, **options)
    return app


@pytest.fixture
def store(redis_url: str, clean_redis: redis.Redis) -> AsyncRedisStore:
    return AsyncRedisStore(connect_async(redis_url))


def max_age(set_cookie: str) -> int:
    return int(set_cookie.lower().split("max-age=", 1)[1].split(";", 1)[0])


def test_starlettes_spelling_gives_14_days_re_sent_on_every_response(
    store: AsyncRedisStore, clean_redis: redis.Redis
) -> None:
    with TestClient(app_with(store, secret_key=SECRET)) as client:
        first = client.get("/login").headers["set-cookie"]
        assert max_age(first) == DAYS_14
        (key,) = clean_redis.keys("sess:*")
        assert DAYS_14 * 1000 - 60_000 < clean_redis.pttl(key) <= DAYS_14 * 1000
        again = client.get("/me")  # a read: the cookie's 14 days start again, as Starlette's
        assert again.json() == {"user": "ada"}
        assert max_age(again.headers["set-cookie"]) == DAYS_14


def test_our_spelling_keeps_one_day_and_sends_the_cookie_only_when_it_changes(
    store: AsyncRedisStore,
) -> None:
    with TestClient(app_with(store, secret=SECRET)) as client:
        assert max_age(client.get("/login").headers["set-cookie"]) == 86400
        assert "set-cookie" not in client.get("/me").headers


def test_clear_under_starlettes_spelling_deletes_the_session_and_its_cookie(
    store: AsyncRedisStore, clean_redis: redis.Redis
) -> None:
    with TestClient(app_with(store, secret_key=SECRET)) as client:
        client.get("/login")
        assert clean_redis.keys("sess:*")
        cleared = client.get("/logout").headers["set-cookie"]
        assert max_age(cleared) == 0
        assert clean_redis.keys("sess:*") == []
        assert client.get("/me").json() == {"user": None}


def test_max_age_none_is_a_browser_session_cookie_that_redis_still_expires(
    store: AsyncRedisStore, clean_redis: redis.Redis
) -> None:
    with TestClient(app_with(store, secret_key=SECRET, max_age=None)) as client:
        cookie = client.get("/login").headers["set-cookie"].lower()
        assert "max-age" not in cookie and "expires" not in cookie
        (key,) = clean_redis.keys("sess:*")
        assert 0 < clean_redis.pttl(key) <= DAYS_14 * 1000


def test_a_cookie_from_starlettes_own_middleware_is_a_new_session_at_no_cost(
    store: AsyncRedisStore,
) -> None:
    # Starlette's cookie holds the data itself, signed; ours holds an id: moving over logs
    # every user out once, and the old cookie costs no Redis command.
    theirs = Starlette(routes=ROUTES)
    theirs.add_middleware(StarletteSessionMiddleware, secret_key=SECRET)
    with TestClient(theirs) as client:
        client.get("/login")
        old = client.cookies["session"]
    counted = RoundTrips(store)
    with TestClient(app_with(store, secret_key=SECRET)) as client:
        client.cookies.set("session", old)
        assert client.get("/me").json() == {"user": None}
        assert counted.take() == 0
