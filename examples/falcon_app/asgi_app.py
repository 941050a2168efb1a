"""Falcon (ASGI) with redis-sessions: a counter, login (regenerate), logout (destroy), a JSON API.

The generic ASGI middleware wraps the Falcon app; a responder gets the session with
``get_session(req.scope)`` (it is ``req.scope["session"]``). The middleware reads the session
before the app runs when the request has a valid cookie, and answers 503 with ``Retry-After``
itself when Redis is down then; the error handler covers ``asave()`` / ``areload()`` failing
inside a responder, which Falcon would otherwise answer with 500.

Run (from the repository root; ``python -m redis_sessions.server`` gives a local Redis)::

    REDIS_URL=redis://127.0.0.1:6379/0 SESSION_SECRET=... \
        uvicorn --factory examples.falcon_app.asgi_app:create_app
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import falcon
import falcon.asgi

from redis_sessions import AsyncRedisStore, StoreUnavailableError
from redis_sessions.asgi import SessionMiddleware, get_session


class CloseStore:
    """Falcon middleware: close the store's connections on the loop that opened them."""

    def __init__(self, store: AsyncRedisStore) -> None:
        self.store = store

    async def process_shutdown(self, scope: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        await self.store.aclose()


class Health:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = {"status": "ok"}


class Counter:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        session = get_session(req.scope)
        session["views"] = session.get("views", 0) + 1
        resp.media = {"views": session["views"]}


class Login:
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        user = req.get_param("user", required=True)  # 400 without it
        session = get_session(req.scope)
        session.regenerate()  # a new id on login: defeats session fixation
        session["user"] = user
        resp.media = {"user": user}


class Logout:
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        get_session(req.scope).destroy()  # deleted from Redis, cookie cleared
        resp.media = {"ok": True}


class Me:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        session = get_session(req.scope)
        if "user" not in session:
            raise falcon.HTTPUnauthorized(title="not logged in")
        resp.media = {"user": session["user"], "views": session.get("views", 0)}


def create_app(
    store: AsyncRedisStore | None = None, secret: str | None = None, **options: Any
) -> SessionMiddleware:
    """The example: the Falcon ASGI app (at ``.app``) inside the session middleware, which gets
    `options` (tests pass their own store)."""
    store = store or AsyncRedisStore()
    app = falcon.asgi.App(middleware=[CloseStore(store)])
    sessions = SessionMiddleware(
        app,
        store,
        secret=secret or os.environ.get("SESSION_SECRET", "change me: a long random secret"),
        **options,
    )

    async def store_unavailable(
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        ex: Exception,
        params: dict[str, Any],
        ws: Any = None,
    ) -> None:
        raise falcon.HTTPServiceUnavailable(retry_after=sessions.config.retry_after)

    app.add_error_handler(StoreUnavailableError, store_unavailable)
    app.add_route("/health", Health())
    app.add_route("/", Counter())
    app.add_route("/login", Login())
    app.add_route("/logout", Logout())
    app.add_route("/api/me", Me())
    return sessions
