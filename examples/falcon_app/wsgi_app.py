"""Falcon (WSGI) with redis-sessions: a counter, login (regenerate), logout (destroy), a JSON API.

Falcon has no sessions of its own; the generic WSGI middleware wraps the Falcon app and a
responder gets the session with ``get_session(req.env)`` (loaded from Redis on first access
only). One error handler turns a Redis outage inside a responder into Falcon's
``HTTPServiceUnavailable`` (503 with ``Retry-After``): Falcon would otherwise answer 500.

Run (from the repository root; ``python -m redis_sessions.server`` gives a local Redis)::

    REDIS_URL=redis://127.0.0.1:6379/0 SESSION_SECRET=... python -m examples.falcon_app.wsgi_app
"""

from __future__ import annotations

import os
from typing import Any
from wsgiref.simple_server import make_server

import falcon

from redis_sessions import RedisStore, StoreUnavailableError
from redis_sessions.wsgi import SessionMiddleware, get_session


class Health:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}  # never touches the session: no Redis round trip


class Counter:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        session = get_session(req.env)
        session["views"] = session.get("views", 0) + 1
        resp.media = {"views": session["views"]}


class Login:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        user = req.get_param("user", required=True)  # 400 without it
        session = get_session(req.env)
        session.regenerate()  # a new id on login: defeats session fixation
        session["user"] = user
        resp.media = {"user": user}


class Logout:
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        get_session(req.env).destroy()  # deleted from Redis, cookie cleared
        resp.media = {"ok": True}


class Me:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        session = get_session(req.env)
        if "user" not in session:
            raise falcon.HTTPUnauthorized(title="not logged in")
        resp.media = {"user": session["user"], "views": session.get("views", 0)}


def create_app(
    store: RedisStore | None = None, secret: str | None = None, **options: Any
) -> SessionMiddleware:
    """The example: the Falcon app (at ``.app``) inside the session middleware, which gets
    `options` (tests pass their own store)."""
    app = falcon.App()
    sessions = SessionMiddleware(
        app,
        store or RedisStore(),
        secret=secret or os.environ.get("SESSION_SECRET", "change me: a long random secret"),
        **options,
    )

    def store_unavailable(
        req: falcon.Request, resp: falcon.Response, ex: Exception, params: dict[str, Any]
    ) -> None:
        raise falcon.HTTPServiceUnavailable(retry_after=sessions.config.retry_after)

    app.add_error_handler(StoreUnavailableError, store_unavailable)
    app.add_route("/health", Health())
    app.add_route("/", Counter())
    app.add_route("/login", Login())
    app.add_route("/logout", Logout())
    app.add_route("/api/me", Me())
    return sessions


if __name__ == "__main__":
    with make_server("127.0.0.1", 8000, create_app()) as server:
        server.serve_forever()
