"""The apps under test: the same routes as an ASGI (Starlette) app and a plain WSGI app."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from redis_sessions.asgi import get_session as get_asgi_session
from redis_sessions.wsgi import get_session

SECRET = "test-secret-0123456789abcdef"


class Gate:
    """Lets a test hold /slow between its load and its save, without sleeping."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()


def asgi_app(gate: Gate | None = None, on_shutdown: Any = None) -> Starlette:
    async def set_(request: Request) -> JSONResponse:
        for key, value in request.query_params.items():
            request.session[key] = value
        return JSONResponse({"ok": True})

    async def get(request: Request) -> JSONResponse:
        return JSONResponse(dict(request.session))

    async def incr(request: Request) -> JSONResponse:
        request.session["n"] = request.session.get("n", 0) + 1
        return JSONResponse({"n": request.session["n"]})

    async def count(request: Request) -> JSONResponse:
        return JSONResponse({"n": get_asgi_session(request).incr("n")})

    async def first(request: Request) -> JSONResponse:
        session = get_asgi_session(request)
        session.setdefault("first", request.query_params["v"])
        await session.asave()  # the value that won is known after the save
        return JSONResponse({"first": session["first"]})

    async def boom(request: Request) -> JSONResponse:
        request.session["boom"] = True
        raise RuntimeError("the app failed")

    async def login(request: Request) -> JSONResponse:
        session = get_asgi_session(request)
        session.regenerate()
        session["user"] = request.query_params.get("user", "alice")
        return JSONResponse({"ok": True})

    async def logout(request: Request) -> JSONResponse:
        get_asgi_session(request).destroy()
        return JSONResponse({"ok": True})

    async def slow(request: Request) -> JSONResponse:
        assert gate is not None
        _ = request.session.get("user")
        gate.entered.set()
        await gate.release.wait()
        request.session["late"] = "write"
        return JSONResponse({"ok": True})

    async def save_mid(request: Request) -> JSONResponse:
        session = get_asgi_session(request)
        session["a"] = 1
        await session.asave()
        session["b"] = 2
        return JSONResponse({"id_known": bool(session.id)})

    async def reload(request: Request) -> JSONResponse:
        session = get_asgi_session(request)
        session["dirty"] = True
        await session.areload()
        return JSONResponse(dict(session))

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def ws(websocket: WebSocket) -> None:
        websocket.session["ws"] = "hello"
        await websocket.accept()
        await websocket.send_json(dict(websocket.session))
        await websocket.close()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if on_shutdown is not None:
            await on_shutdown()

    return Starlette(
        lifespan=lifespan,
        routes=[
            Route("/set", set_),
            Route("/get", get),
            Route("/incr", incr),
            Route("/count", count),
            Route("/first", first),
            Route("/boom", boom),
            Route("/login", login),
            Route("/logout", logout),
            Route("/slow", slow),
            Route("/save-mid", save_mid),
            Route("/reload", reload),
            Route("/health", health),
            Route("/untouched", health),
            WebSocketRoute("/ws", ws),
        ],
    )


StartResponse = Callable[..., Any]


def wsgi_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """The same routes, WSGI style (the session is loaded on first access)."""
    path = environ["PATH_INFO"]
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    body: Any = {"ok": True}
    if path in ("/health", "/untouched"):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    session = get_session(environ)
    if path == "/set":
        session.update(query)
    elif path == "/get":
        body = dict(session)
    elif path == "/incr":
        session["n"] = session.get("n", 0) + 1
        body = {"n": session["n"]}
    elif path == "/count":
        body = {"n": session.incr("n")}
    elif path == "/first":
        session.setdefault("first", query["v"])
        session.save()
        body = {"first": session["first"]}
    elif path == "/boom":
        session["boom"] = True
        raise RuntimeError("the app failed")
    elif path == "/login":
        session.regenerate()
        session["user"] = query.get("user", "alice")
    elif path == "/logout":
        session.destroy()
    elif path == "/save-mid":
        session["a"] = 1
        session.save()
        session["b"] = 2
    elif path == "/reload":
        session["dirty"] = True
        session.reload()
        body = dict(session)
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    data = json.dumps(body).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [data]
