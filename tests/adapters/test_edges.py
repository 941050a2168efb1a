"""Edges of the adapters: typed access, misuse, other scopes, errors after the response."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from redis_sessions import (
    AsyncRedisStore,
    ConfigError,
    MemoryStore,
    RedisStore,
    Session,
    SessionStateError,
    StoreUnavailableError,
    connect_async,
)
from redis_sessions.asgi import SessionMiddleware as ASGISessions
from redis_sessions.asgi import get_session as asgi_session
from redis_sessions.wsgi import SessionMiddleware as WSGISessions
from redis_sessions.wsgi import get_session as wsgi_session
from tests.adapters.apps import SECRET, asgi_app, wsgi_app


def test_asgi_get_session_is_typed_and_refuses_a_missing_middleware() -> None:
    seen: list[Session] = []

    async def route(request: Request) -> PlainTextResponse:
        seen.append(asgi_session(request))
        assert asgi_session(request.scope) is seen[0]
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", route)])
    with TestClient(ASGISessions(app, _memory_async(), secret=SECRET)) as client:
        assert client.get("/").text == "ok"
    assert isinstance(seen[0], Session)
    with pytest.raises(LookupError, match="SessionMiddleware"):
        asgi_session({"type": "http"})
    with pytest.raises(LookupError, match="SessionMiddleware"):
        wsgi_session({})


def _memory_async() -> Any:
    from redis_sessions import AsyncMemoryStore

    return AsyncMemoryStore()


def test_sync_methods_under_asgi_and_async_methods_under_wsgi_are_refused() -> None:
    async def route(request: Request) -> PlainTextResponse:
        session = asgi_session(request)
        for call in (session.save, session.reload):
            with pytest.raises(SessionStateError, match="await session"):
                call()
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", route)])
    with TestClient(ASGISessions(app, _memory_async(), secret=SECRET)) as client:
        assert client.get("/").status_code == 200

    def wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = wsgi_session(environ)
        for call in (session.asave, session.areload):
            with pytest.raises(SessionStateError, match="under WSGI"):
                asyncio.run(call())
        start_response("200 OK", [])
        return [b"ok"]

    transport = httpx.WSGITransport(app=WSGISessions(wsgi, MemoryStore(), secret=SECRET))
    with httpx.Client(transport=transport, base_url="http://t") as client:
        assert client.get("/").status_code == 200


def test_other_asgi_scopes_pass_through_untouched() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)

    middleware = ASGISessions(app, _memory_async(), secret=SECRET)
    # receive and send are never called: the scope passes through to the app.
    asyncio.run(middleware({"type": "lifespan"}, None, None))  # type: ignore[arg-type]
    assert seen == [{"type": "lifespan"}]


def test_store_error_after_the_response_started_propagates(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    async def stream(request: Request) -> StreamingResponse:
        async def body() -> Any:
            yield b"partial"
            raise StoreUnavailableError("connection")

        return StreamingResponse(body())

    app = ASGISessions(
        Starlette(routes=[Route("/", stream)]),
        AsyncRedisStore(connect_async(redis_url)),
        secret=SECRET,
    )
    with TestClient(app) as client, pytest.raises(StoreUnavailableError):
        client.get("/")


def test_websocket_is_closed_with_1013_when_the_store_is_down(make_server: Any) -> None:
    server = make_server(appendonly=False)
    store = AsyncRedisStore(connect_async(server.url))
    app = ASGISessions(asgi_app(on_shutdown=store.aclose), store, secret=SECRET)
    with TestClient(app) as client:
        cookie = client.get("/set?a=1").cookies["session"]
        server.kill()
        with (
            pytest.raises(WebSocketDisconnect) as closed,
            client.websocket_connect("/ws", headers={"cookie": "session=" + cookie}),
        ):
            pass
    assert closed.value.code == 1013


def test_wsgi_save_failing_at_start_response_replaces_the_body(make_server: Any) -> None:
    server = make_server(appendonly=False)
    store = RedisStore(url=server.url)
    closed: list[bool] = []

    class Body(list[bytes]):
        def close(self) -> None:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: Any) -> Body:
        wsgi_session(environ)["k"] = "v"
        server.kill()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body([b"the app's body"])

    transport = httpx.WSGITransport(app=WSGISessions(app, store, secret=SECRET))
    with httpx.Client(transport=transport, base_url="http://t") as client:
        response = client.get("/")
    assert response.status_code == 503
    assert b"the app's body" not in response.content
    assert closed == [True]


@pytest.mark.parametrize(
    "options",
    [{"max_size": 0}, {"scan_count": 0}, {"ttl": 0}, {"ttl": True}, {"max_size": "1"}],
)
def test_store_options_are_validated(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=next(iter(options))):
        MemoryStore(**options)


def test_store_ttl_callable_and_prefix() -> None:
    store = MemoryStore(prefix="app:", ttl=lambda data: 10 if data.get("short") else 1000)
    assert store.prefix == "app:"
    store.set("h1", {"short": True})
    store.set("h2", {})
    assert sorted(store.ids()) == ["h1", "h2"]


def test_wsgi_app_without_cookie_and_untouched_session_is_free() -> None:
    transport = httpx.WSGITransport(app=WSGISessions(wsgi_app, MemoryStore(), secret=SECRET))
    with httpx.Client(transport=transport, base_url="http://t") as client:
        assert client.get("/nowhere").status_code == 404


def test_touch_and_mark_modified_load_a_lazy_wsgi_session_first(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = wsgi_session(environ)
        if environ["PATH_INFO"] == "/touch":
            session.touch()
        elif environ["PATH_INFO"] == "/mark":
            session.mark_modified()
        else:
            session["a"] = {"n": 1}
        start_response("200 OK", [])
        return [b"ok"]

    transport = httpx.WSGITransport(app=WSGISessions(app, RedisStore(url=redis_url), secret=SECRET))
    with httpx.Client(transport=transport, base_url="http://t") as client:
        client.get("/set")
        (key,) = clean_redis.scan_iter(match="sess:*")
        clean_redis.pexpire(key, 5000)
        assert "max-age=86400" in client.get("/touch").headers["set-cookie"].lower()
        assert clean_redis.pttl(key) > 80_000_000
        clean_redis.pexpire(key, 5000)
        client.get("/mark")
        assert clean_redis.pttl(key) > 80_000_000  # rewritten with a fresh TTL
