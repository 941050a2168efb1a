"""Flask with redis-sessions: a counter, login (regenerate), logout (destroy), a JSON API.

``flask.session`` is used exactly as with Flask's cookie sessions; `get_session()` gives the
same object typed, for ``regenerate()`` and ``destroy()``.

Run (from the repository root; ``python -m redis_sessions.server`` gives a local Redis)::

    REDIS_URL=redis://127.0.0.1:6379/0 SESSION_SECRET=... flask --app examples.flask_app.app run

Then ``curl -c jar -b jar localhost:5000/``, ``curl -c jar -b jar -X POST
'localhost:5000/login?user=alice'``, ``curl -b jar localhost:5000/api/me``.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, request, session

from redis_sessions import RedisStore
from redis_sessions.flask import RedisSessions, get_session


def create_app(
    store: RedisStore | None = None, secret: str | None = None, **settings: Any
) -> Flask:
    """The example app (``flask --app`` finds this factory); tests pass their own store."""
    app = Flask(__name__)
    app.secret_key = secret or os.environ.get("SESSION_SECRET", "change me: a long random secret")
    app.config.update(settings)
    RedisSessions(app, store=store)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}  # never touches the session: no Redis round trip

    @app.get("/")
    def counter() -> dict[str, int]:
        session["views"] = session.get("views", 0) + 1
        return {"views": session["views"]}

    @app.post("/login")
    def login() -> tuple[dict[str, str], int] | dict[str, str]:
        user = request.values.get("user", "")
        if not user:
            return {"error": "user is required"}, 400
        get_session().regenerate()  # a new id on login: defeats session fixation
        session["user"] = user
        session.permanent = request.values.get("remember") == "1"  # "remember me"
        return {"user": user}

    @app.post("/logout")
    def logout() -> dict[str, bool]:
        get_session().destroy()  # deleted from Redis, cookie cleared
        return {"ok": True}

    @app.get("/api/me")
    def me() -> tuple[dict[str, str], int] | dict[str, Any]:
        if "user" not in session:
            return {"error": "not logged in"}, 401
        return {"user": session["user"], "views": session.get("views", 0)}

    return app
