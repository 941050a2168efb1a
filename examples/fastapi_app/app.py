"""FastAPI with redis-sessions: login (regenerate), logout (destroy), a JSON API, a websocket.

Run: ``REDIS_URL=redis://127.0.0.1:6379/0 uvicorn examples.fastapi_app.app:app`` (from the
repository root), or ``python -m redis_sessions.server`` first for a local Redis.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI, HTTPException, WebSocket

from redis_sessions import AsyncRedisStore
from redis_sessions.asgi import SessionMiddleware
from redis_sessions.fastapi import SessionDep


def create_app(store: AsyncRedisStore | None = None, secret: str | None = None) -> FastAPI:
    """The example app; tests pass their own store."""
    store = store or AsyncRedisStore()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await store.aclose()  # close the pool on the loop that opened it

    app = FastAPI(lifespan=lifespan)
    app.add_middleware(
        SessionMiddleware,
        store=store,
        secret=secret or os.environ.get("SESSION_SECRET", "change me: a long random secret"),
        lazy=True,  # routes that do not ask for the session cost no Redis round trip
    )

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/")
    async def counter(session: SessionDep) -> dict[str, int]:
        session["views"] = session.get("views", 0) + 1
        return {"views": session["views"]}

    @app.post("/login")
    async def login(user: str, session: SessionDep) -> dict[str, str]:
        session.regenerate()  # a new id on login: defeats session fixation
        session["user"] = user
        return {"user": user}

    @app.post("/logout")
    async def logout(session: SessionDep) -> dict[str, bool]:
        session.destroy()
        return {"ok": True}

    @app.get("/api/me")
    async def me(session: SessionDep) -> dict[str, str]:
        if "user" not in session:
            raise HTTPException(status_code=401, detail="not logged in")
        return {"user": session["user"]}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, session: SessionDep) -> None:
        await websocket.accept()
        await websocket.send_json({"user": session.get("user")})
        await websocket.close()

    return app


app = create_app()  # uvicorn examples.fastapi_app.app:app
