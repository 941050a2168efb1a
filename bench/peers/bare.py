"""Starlette alone, no session: the framework's ceiling on this machine."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("0")


app = Starlette(routes=[Route("/read", ok), Route("/incr", ok), Route("/untouched", ok)])
