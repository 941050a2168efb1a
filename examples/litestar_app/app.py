"""Litestar with redis-sessions: a counter, login (regenerate), logout, a JSON API.

Run (from the repository root; ``python -m redis_sessions.server`` gives a local Redis)::

    REDIS_URL=redis://127.0.0.1:6379/0 SESSION_SECRET=... uvicorn examples.litestar_app.app:app

Handlers use Litestar's own session API (``request.session``, ``request.clear_session()``);
`get_session` gives the typed session for ``regenerate()``.
"""

from __future__ import annotations

import os
from typing import Any

from litestar import Litestar, Request, get, post
from litestar.exceptions import NotAuthorizedException, ValidationException

from redis_sessions import AsyncRedisStore
from redis_sessions.asgi import get_session
from redis_sessions.litestar import RedisSessions


@get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}  # never touches the session: no Redis round trip


@get("/")
async def counter(request: Request[Any, Any, Any]) -> dict[str, int]:
    views = request.session.get("views", 0) + 1
    request.session["views"] = views
    return {"views": views}


@post("/login", status_code=200)
async def login(request: Request[Any, Any, Any]) -> dict[str, str]:
    user = request.query_params.get("user")
    if not user:
        raise ValidationException("?user= is required")
    get_session(request).regenerate()  # a new id on login: defeats session fixation
    request.session["user"] = user
    return {"user": user}


@post("/logout", status_code=200)
async def logout(request: Request[Any, Any, Any]) -> dict[str, bool]:
    request.clear_session()  # Litestar's API: the stored session is deleted, the cookie cleared
    return {"ok": True}


@get("/api/me")
async def me(request: Request[Any, Any, Any]) -> dict[str, str]:
    if "user" not in request.session:
        raise NotAuthorizedException("not logged in")  # 401
    return {"user": request.session["user"]}


def create_app(store: AsyncRedisStore | None = None, secret: str | None = None) -> Litestar:
    """The example app; tests pass their own store."""
    store = store or AsyncRedisStore()
    secret = secret or os.environ.get("SESSION_SECRET", "change me: a long random secret")
    return Litestar(
        route_handlers=[health, counter, login, logout, me],
        plugins=[RedisSessions(store, secret=secret)],
        on_shutdown=[store.aclose],  # close the pool on the loop that opened it
    )


app = create_app()  # uvicorn examples.litestar_app.app:app
