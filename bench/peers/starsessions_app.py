"""starsessions' SessionMiddleware with its RedisStore on Starlette: the bench routes.

``rolling=True`` with a one-day lifetime is the closest to our one-day idle timeout. The
session is loaded only by the routes that call `load_session`, so ``/untouched`` costs nothing.
"""

from __future__ import annotations

import os

import redis.asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starsessions import SessionMiddleware, load_session
from starsessions.stores.redis import RedisStore

DAY = 86400


async def read(request: Request) -> PlainTextResponse:
    await load_session(request)
    return PlainTextResponse(str(request.session.get("n", 0)))


async def incr(request: Request) -> PlainTextResponse:
    await load_session(request)
    request.session["n"] = request.session.get("n", 0) + 1
    return PlainTextResponse(str(request.session["n"]))


async def untouched(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = SessionMiddleware(
    Starlette(routes=[Route("/read", read), Route("/incr", incr), Route("/untouched", untouched)]),
    # connection=, not url=: the url argument is deprecated in 2.x.
    store=RedisStore(connection=redis.asyncio.Redis.from_url(os.environ["REDIS_URL"])),
    lifetime=DAY,
    rolling=True,
    cookie_https_only=False,  # the bench is plain HTTP on 127.0.0.1
)
