"""Bottle with redis-sessions: a counter, login (regenerate), logout (destroy), a JSON API.

Bottle has no sessions of its own; the generic WSGI middleware wraps the Bottle app and a
route gets the session with ``get_session(request.environ)`` (loaded from Redis on first
access only). One small plugin turns a Redis outage inside a route into a 503 with
``Retry-After``: without it Bottle would catch the error and answer 500.

Run (from the repository root; ``python -m redis_sessions.server`` gives a local Redis)::

    REDIS_URL=redis://127.0.0.1:6379/0 SESSION_SECRET=... python -m examples.bottle_app.app
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import bottle
from bottle import request, response

from redis_sessions import RedisStore, StoreUnavailableError
from redis_sessions.wsgi import SessionMiddleware, get_session


def store_errors_as_503(retry_after: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A Bottle plugin: the session store failing inside a route is a 503, not Bottle's 500."""

    def plugin(callback: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(callback)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return callback(*args, **kwargs)
            except StoreUnavailableError:
                raise bottle.HTTPError(
                    503,
                    "Session store unavailable, please retry shortly.",
                    Retry_After=str(retry_after),
                    Cache_Control="no-store",
                ) from None

        return wrapper

    return plugin


def create_app(
    store: RedisStore | None = None, secret: str | None = None, **options: Any
) -> SessionMiddleware:
    """The example: the Bottle app (at ``.app``) inside the session middleware, which gets
    `options` (tests pass their own store)."""
    app = bottle.Bottle()
    sessions = SessionMiddleware(
        app,
        store or RedisStore(),
        secret=secret or os.environ.get("SESSION_SECRET", "change me: a long random secret"),
        **options,
    )
    app.install(store_errors_as_503(sessions.config.retry_after))

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}  # never touches the session: no Redis round trip

    @app.get("/")
    def counter() -> dict[str, int]:
        session = get_session(request.environ)
        session["views"] = session.get("views", 0) + 1
        return {"views": session["views"]}

    @app.post("/login")
    def login() -> dict[str, str]:
        user = request.params.get("user", "")
        if not user:
            response.status = 400
            return {"error": "user is required"}
        session = get_session(request.environ)
        session.regenerate()  # a new id on login: defeats session fixation
        session["user"] = user
        return {"user": user}

    @app.post("/logout")
    def logout() -> dict[str, bool]:
        get_session(request.environ).destroy()  # deleted from Redis, cookie cleared
        return {"ok": True}

    @app.get("/api/me")
    def me() -> dict[str, Any]:
        session = get_session(request.environ)
        if "user" not in session:
            response.status = 401
            return {"error": "not logged in"}
        return {"user": session["user"], "views": session.get("views", 0)}

    return sessions


if __name__ == "__main__":
    bottle.run(create_app(), host="127.0.0.1", port=8080)
