"""Quart with redis-sessions: a counter, login (regenerate), logout (destroy), a JSON API.

Run (from the repository root; ``python -m redis_sessions.server`` gives a local Redis)::

    REDIS_URL=redis://127.0.0.1:6379/0 SESSION_SECRET=... hypercorn examples.quart_app.app:app

Views use ``quart.session`` unchanged; ``regenerate()`` and ``destroy()`` are the two
additions, on ``get_session()`` (the same object as ``quart.session``, typed for them).
"""

from __future__ import annotations

import os
from typing import Any

from quart import Quart, request, session

from redis_sessions import AsyncRedisStore
from redis_sessions.quart import RedisSessions, get_session


def create_app(store: AsyncRedisStore | None = None, secret: str | None = None) -> Quart:
    """The example app; tests pass their own store."""
    store = store or AsyncRedisStore()
    secret = secret or os.environ.get("SESSION_SECRET", "change me: a long random secret")
    app = Quart(__name__)
    RedisSessions(app, store, secret=secret)  # quart.session now lives in Redis

    @app.after_serving
    async def close_store() -> None:
        await store.aclose()  # close the pool on the loop that opened it

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/")
    async def counter() -> dict[str, int]:
        session["views"] = session.get("views", 0) + 1
        return {"views": session["views"]}

    @app.post("/login")
    async def login() -> dict[str, str]:
        user = request.args["user"]
        get_session().regenerate()  # a new id on login: defeats session fixation
        session["user"] = user
        return {"user": user}

    @app.post("/logout")
    async def logout() -> dict[str, bool]:
        get_session().destroy()  # the stored session is deleted, the cookie cleared
        return {"ok": True}

    @app.get("/api/me")
    async def me() -> Any:
        if "user" not in session:
            return {"error": "not logged in"}, 401
        return {"user": session["user"]}

    return app


app = create_app()  # hypercorn examples.quart_app.app:app
