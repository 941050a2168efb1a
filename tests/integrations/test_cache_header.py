"""A response that sets the session cookie is never stored by a shared cache (``private``),
even when the app marks the page ``public``: both field lines are sent, in ASGI and Flask."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import flask
import pytest
import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from redis_sessions import AsyncRedisStore, RedisStore, connect, connect_async
from redis_sessions.asgi import SessionMiddleware
from redis_sessions.flask import RedisSessions

SECRET = "cache-header-secret-0123456789"
OURS = 'private, no-cache="Set-Cookie"'


def directives(values: list[str]) -> list[str]:
    """The Cache-Control directives of every field line, combined as RFC 9110 5.3 says."""
    return [d.strip() for line in values for d in line.split(",")]


@pytest.fixture
def store(redis_url: str, clean_redis: redis.Redis) -> AsyncRedisStore:
    return AsyncRedisStore(connect_async(redis_url))


def test_asgi_adds_private_beside_the_apps_public_cache_control(store: AsyncRedisStore) -> None:
    async def page(request: Request) -> JSONResponse:
        if "login" in request.query_params:
            request.session["user"] = "ada"
        return JSONResponse({}, headers={"cache-control": "public, max-age=600"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await store.aclose()

    app = Starlette(routes=[Route("/", page)], lifespan=lifespan)
    app.add_middleware(SessionMiddleware, store=store, secret=SECRET)
    with TestClient(app) as client:
        setting = client.get("/?login=1")
        assert "set-cookie" in setting.headers
        assert setting.headers.get_list("cache-control") == ["public, max-age=600", OURS]
        assert "private" in directives(setting.headers.get_list("cache-control"))
        plain = client.get("/")  # no cookie set: the app's header alone, untouched
        assert "set-cookie" not in plain.headers
        assert plain.headers.get_list("cache-control") == ["public, max-age=600"]


def test_flask_adds_private_beside_the_apps_public_cache_control(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    app = flask.Flask(__name__)
    app.secret_key = SECRET
    RedisSessions(app, store=RedisStore(connect(redis_url)))

    @app.get("/")
    def page() -> Any:
        flask.session["user"] = "ada"
        response = flask.jsonify({})
        response.headers["Cache-Control"] = "public, max-age=600"
        return response

    response = app.test_client().get("/")
    assert "Set-Cookie" in response.headers
    assert response.headers.getlist("Cache-Control") == ["public, max-age=600", OURS]
