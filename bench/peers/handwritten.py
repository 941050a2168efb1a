"""The limit: the fewest Redis commands a session can cost, written by hand.

A random id in a plain cookie (no signature), the session a JSON string at ``hw:<id>`` with a
one-day expiry: ``/read`` is one GET, ``/incr`` a GET and a SET with EX, the first visit a SET.
"""

from __future__ import annotations

import json
import os
import secrets

import redis.asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

client = redis.asyncio.Redis.from_url(os.environ["REDIS_URL"])
DAY = 86400


async def load(request: Request) -> tuple[str | None, dict[str, int]]:
    sid = request.cookies.get("sid")
    if sid:
        raw = await client.get(f"hw:{sid}")
        if raw is not None:
            return sid, json.loads(raw)
    return None, {}


async def read(request: Request) -> PlainTextResponse:
    _, data = await load(request)
    return PlainTextResponse(str(data.get("n", 0)))


async def incr(request: Request) -> PlainTextResponse:
    sid, data = await load(request)
    data["n"] = data.get("n", 0) + 1
    response = PlainTextResponse(str(data["n"]))
    if sid is None:
        sid = secrets.token_urlsafe(32)
        response.set_cookie("sid", sid, max_age=DAY, httponly=True, samesite="lax")
    await client.set(f"hw:{sid}", json.dumps(data), ex=DAY)
    return response


async def untouched(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/read", read), Route("/incr", incr), Route("/untouched", untouched)])
