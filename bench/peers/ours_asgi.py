"""redis-sessions' ASGI middleware on Starlette: the bench routes (see registry.py)."""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from redis_sessions import AsyncRedisStore
from redis_sessions.asgi import SessionMiddleware, get_session


# lazy=True, as with FastAPI's SessionDep: a route loads the session when it needs it, so a
# route that never does costs no round trip even with a cookie.
async def read(request: Request) -> PlainTextResponse:
    session = get_session(request)
    await session.aload()
    return PlainTextResponse(str(session.get("n", 0)))


async def incr(request: Request) -> PlainTextResponse:
    session = get_session(request)
    await session.aload()
    session["n"] = session.get("n", 0) + 1
    return PlainTextResponse(str(session["n"]))


async def atomic(request: Request) -> PlainTextResponse:
    session = get_session(request)
    await session.aload()
    return PlainTextResponse(str(session.incr("n")))


async def untouched(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = SessionMiddleware(
    Starlette(
        routes=[
            Route("/read", read),
            Route("/incr", incr),
            Route("/atomic", atomic),
            Route("/untouched", untouched),
        ]
    ),
    AsyncRedisStore(url=os.environ["REDIS_URL"]),
    secret="bench-secret-0123456789abcdef0123",
    lazy=True,
)
