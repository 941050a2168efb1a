"""Litestar's server-side sessions with ``litestar.stores.redis.RedisStore``: the bench routes.

The middleware loads the session before every handler and writes it (with a Set-Cookie) after
every response, so ``/untouched`` opts out with ``skip_session``, Litestar's way to keep a route
free of the session. ``max_age`` of a day: every response rewrites the key with that TTL, which
makes it an idle timeout like ours.
"""

from __future__ import annotations

import os

import redis.asyncio
from litestar import Litestar, Request, get
from litestar.middleware.session.server_side import ServerSideSessionConfig
from litestar.stores.redis import RedisStore

DAY = 86400


@get("/read")
async def read(request: Request) -> str:
    return str(request.session.get("n", 0))


@get("/incr")
async def incr(request: Request) -> str:
    request.session["n"] = request.session.get("n", 0) + 1
    return str(request.session["n"])


@get("/untouched", opt={"skip_session": True})
async def untouched() -> str:
    return "ok"


app = Litestar(
    route_handlers=[read, incr, untouched],
    middleware=[ServerSideSessionConfig(max_age=DAY).middleware],
    stores={
        "sessions": RedisStore(
            redis.asyncio.Redis.from_url(os.environ["REDIS_URL"]), handle_client_shutdown=True
        )
    },
)
