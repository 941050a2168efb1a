"""FastAPI dependencies for the session of the ASGI `SessionMiddleware`.

``request.session`` works unchanged; these add typing and lazy loading:

    from redis_sessions.fastapi import SessionDep

    app.add_middleware(SessionMiddleware, store=AsyncRedisStore(), secret=..., lazy=True)

    @app.get("/me")
    async def me(session: SessionDep) -> dict[str, str]:
        ...

With ``lazy=True`` a route that does not depend on the session costs no Redis round trip,
even when the request carries a session cookie; a route that does pays the one read.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from ._session import Session
from .asgi import get_session as _scope_session

__all__ = ["SessionDep", "get_session"]


async def get_session(connection: HTTPConnection) -> Session:
    """Dependency: the `Session` of the request or websocket, loaded (one round trip when the
    middleware is lazy)."""
    session = _scope_session(connection)
    await session.aload()
    return session


SessionDep = Annotated[Session, Depends(get_session)]
"""``session: SessionDep`` in a route's parameters gives it the loaded `Session`."""
