"""Redis stopped between two requests, in every setup of the README's framework table: each
request that needs the session answers 503 with Retry-After within 3 s, whatever the framework
does with the exception (Starlette's ServerErrorMiddleware, Falcon's and Bottle's 500 pages,
Django's middleware chain), and the same app serves 200 again once the server is back on its
port.

Each setup is the README's line, without any error handler of the app's own. ``/count`` reads
and writes the session (a lazy setup loads it inside the framework); ``/save`` is a new
visitor whose mid-request ``save()`` / ``asave()`` fails inside the handler. Every app goes
through its framework's real request handling: ASGI apps through Starlette's TestClient with
server exceptions not re-raised (as a server does), WSGI apps through httpx's WSGI transport.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import bottle
import falcon
import falcon.asgi
import flask
import httpx
import pytest
from fastapi import FastAPI
from litestar import Litestar
from litestar import Request as LitestarRequest
from litestar import get as litestar_get
from quart import Quart
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from redis_sessions.asgi import SessionMiddleware as ASGISessions
from redis_sessions.asgi import get_session as asgi_session
from redis_sessions.fastapi import SessionDep
from redis_sessions.flask import RedisSessions as FlaskSessions
from redis_sessions.litestar import RedisSessions as LitestarSessions
from redis_sessions.quart import RedisSessions as QuartSessions
from redis_sessions.quart import get_session as quart_session
from redis_sessions.wsgi import SessionMiddleware as WSGISessions
from redis_sessions.wsgi import get_session as wsgi_session
from tests.integrations.flaskkit import SECRET
from tests.integrations.flaskkit import async_store as _async_store
from tests.integrations.flaskkit import sync_store as _sync_store
from tests.support.servers import wait_until

pytestmark = pytest.mark.faults

OPENED: list[Any] = []  # the stores of the running test, closed at its end


def async_store(url: str) -> Any:
    OPENED.append(store := _async_store(url))
    return store


def sync_store(url: str) -> Any:
    OPENED.append(store := _sync_store(url))
    return store


def close_stores(http: Any) -> None:
    while OPENED:
        store = OPENED.pop()
        if hasattr(store, "aclose"):
            http.portal.call(store.aclose)  # on the loop that opened its connections
        else:
            store.close()


# -- the apps: one per README row (and per lazy/eager variant) ---------------------------------


async def _count(session: Any) -> dict[str, int]:
    await session.aload()  # a no-op when the middleware loaded it already
    session["views"] = session.get("views", 0) + 1
    return {"views": session["views"]}


async def _save(session: Any) -> dict[str, bool]:
    await session.aload()
    session["saved"] = True
    await session.asave()  # fails inside the app when Redis is down
    return {"saved": True}


def starlette_app() -> Starlette:
    async def count(request: Request) -> JSONResponse:
        return JSONResponse(await _count(asgi_session(request)))

    async def save(request: Request) -> JSONResponse:
        return JSONResponse(await _save(asgi_session(request)))

    return Starlette(routes=[Route("/count", count), Route("/save", save)])


def starlette_added(url: str, lazy: bool) -> Any:
    """README row "Starlette": ``app.add_middleware(SessionMiddleware, ...)``."""
    app = starlette_app()
    app.add_middleware(
        ASGISessions,
        store=async_store(url),
        secret=SECRET,
        lazy=lazy,
    )
    return app


def starlette_wrapped(url: str, lazy: bool) -> Any:
    """``app = SessionMiddleware(Starlette(routes=...), ...)``: Starlette's
    ServerErrorMiddleware is inside ours."""
    return ASGISessions(starlette_app(), async_store(url), secret=SECRET, lazy=lazy)


def fastapi_app(url: str, lazy: bool) -> Any:
    """README row "FastAPI": ``add_middleware(..., lazy=True)`` and ``SessionDep``."""
    app = FastAPI()
    app.add_middleware(
        ASGISessions,
        store=async_store(url),
        secret=SECRET,
        lazy=lazy,
    )

    @app.get("/count")
    async def count(session: SessionDep) -> dict[str, int]:
        return await _count(session)

    @app.get("/save")
    async def save(session: SessionDep) -> dict[str, bool]:
        return await _save(session)

    return app


def litestar_app(url: str, lazy: bool) -> Any:
    """README row "Litestar": ``plugins=[RedisSessions(...)]``."""

    @litestar_get("/count")
    async def count(request: LitestarRequest[Any, Any, Any]) -> dict[str, int]:
        return await _count(asgi_session(request))

    @litestar_get("/save")
    async def save(request: LitestarRequest[Any, Any, Any]) -> dict[str, bool]:
        return await _save(asgi_session(request))

    return Litestar(
        route_handlers=[count, save], plugins=[LitestarSessions(async_store(url), secret=SECRET)]
    )


def quart_app(url: str, lazy: bool) -> Any:
    """README row "Quart": ``RedisSessions(app, AsyncRedisStore())``."""
    app = Quart(__name__)
    QuartSessions(app, async_store(url), secret=SECRET)

    @app.get("/count")
    async def count() -> dict[str, int]:
        return await _count(quart_session().session)

    @app.get("/save")
    async def save() -> dict[str, bool]:
        return await _save(quart_session().session)

    return app


class FalconCount:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = await _count(asgi_session(req.scope))


class FalconSave:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.media = await _save(asgi_session(req.scope))


def falcon_asgi_app(url: str, lazy: bool) -> Any:
    """README row "Falcon", ASGI: the ASGI middleware around ``falcon.asgi.App()``."""
    app = falcon.asgi.App()
    app.add_route("/count", FalconCount())
    app.add_route("/save", FalconSave())
    return ASGISessions(app, async_store(url), secret=SECRET, lazy=lazy)


def count_sync(session: Any) -> dict[str, int]:
    session["views"] = session.get("views", 0) + 1  # the lazy load happens here
    return {"views": session["views"]}


def save_sync(session: Any) -> dict[str, bool]:
    session["saved"] = True
    session.save()  # fails inside the app when Redis is down
    return {"saved": True}


def flask_app(url: str) -> Any:
    """README row "Flask": ``RedisSessions(app)``; ``/count?after=1`` uses the session in an
    ``after_request`` function too."""
    app = flask.Flask(__name__)
    app.secret_key = SECRET
    FlaskSessions(app, store=sync_store(url))

    @app.get("/count")
    def count() -> dict[str, int]:
        return count_sync(flask.session)

    @app.get("/save")
    def save() -> dict[str, bool]:
        return save_sync(flask.session)

    @app.get("/last")
    def last() -> dict[str, bool]:
        return {"ok": True}

    @app.after_request
    def remember(response: flask.Response) -> flask.Response:
        if flask.request.path == "/last":
            flask.session["last"] = flask.request.path  # loads the session here
        return response

    return app


class FalconWSGICount:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = count_sync(wsgi_session(req.env))


class FalconWSGISave:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = save_sync(wsgi_session(req.env))


def falcon_wsgi_app(url: str) -> Any:
    """README row "Falcon", WSGI: ``SessionMiddleware(falcon.App(), RedisStore(), ...)``."""
    app = falcon.App()
    app.add_route("/count", FalconWSGICount())
    app.add_route("/save", FalconWSGISave())
    return WSGISessions(app, sync_store(url), secret=SECRET)


def bottle_app(url: str) -> Any:
    """README row "Bottle": ``SessionMiddleware(app, RedisStore(), ...)``."""
    app = bottle.Bottle()

    @app.get("/count")
    def count() -> dict[str, int]:
        return count_sync(wsgi_session(bottle.request.environ))

    @app.get("/save")
    def save() -> dict[str, bool]:
        return save_sync(wsgi_session(bottle.request.environ))

    return WSGISessions(app, sync_store(url), secret=SECRET)


# -- the matrix ---------------------------------------------------------------------------------


@dataclass
class Case:
    """One setup: how to build its app on a Redis URL, and the requests made while Redis is
    down ((path, sends the session cookie))."""

    build: Callable[[str], Any]
    asgi: bool
    down: list[tuple[str, bool]] = field(
        default_factory=lambda: [("/count", True), ("/save", False)]
    )
    cookie: str = "session"
    # Starlette's TestClient never ends a falcon.asgi.App's lifespan (a hang at exit, without
    # our middleware too): those apps are served without it.
    lifespan: bool = True


def _asgi(build: Callable[[str, bool], Any], lazy: bool, lifespan: bool = True) -> Case:
    return Case(lambda url: build(url, lazy), asgi=True, lifespan=lifespan)


CASES = {
    "starlette-eager": _asgi(starlette_added, False),
    "starlette-lazy": _asgi(starlette_added, True),
    "starlette-wrapped-eager": _asgi(starlette_wrapped, False),
    "starlette-wrapped-lazy": _asgi(starlette_wrapped, True),
    "fastapi-lazy": _asgi(fastapi_app, True),
    "fastapi-eager": _asgi(fastapi_app, False),
    "litestar": _asgi(litestar_app, False),
    "quart": _asgi(quart_app, False),
    "falcon-asgi-eager": _asgi(falcon_asgi_app, False, lifespan=False),
    "falcon-asgi-lazy": _asgi(falcon_asgi_app, True, lifespan=False),
    "flask": Case(flask_app, asgi=False),
    "flask-after-request": Case(flask_app, asgi=False, down=[("/last", True)]),
    "falcon-wsgi": Case(falcon_wsgi_app, asgi=False),
    "bottle": Case(bottle_app, asgi=False),
}


def client_for(case: Case, url: str) -> Any:
    app = case.build(url)
    if case.asgi:
        return TestClient(app, raise_server_exceptions=False)
    return httpx.Client(
        transport=httpx.WSGITransport(app=app, raise_app_exceptions=False),
        base_url="http://testserver",
    )


def assert_503_in_time(http: Any, path: str, headers: dict[str, str]) -> None:
    http.cookies.clear()
    started = time.monotonic()
    response = http.get(path, headers=headers)
    elapsed = time.monotonic() - started
    assert response.status_code == 503, (path, response.status_code, response.text[:300])
    assert response.headers["retry-after"] == "5"
    assert "set-cookie" not in response.headers
    assert elapsed < 3, (path, elapsed)


def outage_round(http: Any, server: Any, case: Case, count_path: str = "/count") -> None:
    """200 with a session, the server stopped: 503s; started again: 200, same session."""
    first = http.get(count_path)
    assert first.status_code == 200, first.text
    jar = {"cookie": f"{case.cookie}={first.cookies[case.cookie]}"}
    http.cookies.clear()
    server.stop(cleanup=False)  # SIGTERM to the PID it started; the AOF keeps the session
    for path, with_cookie in case.down:
        assert_503_in_time(http, path, jar if with_cookie else {})
    server.restart()  # same port, same data
    seen: list[Any] = []

    def served() -> bool:
        http.cookies.clear()
        response = http.get(count_path, headers=jar)
        if response.status_code == 200:
            seen.append(response.json())
        return response.status_code == 200

    wait_until(served, 5, message="no 200 after the server came back")
    assert seen == [{"views": 2}]  # the same session, counted on from before the outage


# Known gap: a session first loaded in an after_request function fails after the view, where
# Flask turns any exception into its 500 page without consulting our error handler.
AFTER_REQUEST_GAP = pytest.mark.xfail(strict=True, reason="Flask: a load in after_request is 500")


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=[AFTER_REQUEST_GAP] if name == "flask-after-request" else [])
        for name in CASES
    ],
)
def test_redis_stopped_between_two_requests_is_503_then_200(name: str, make_server: Any) -> None:
    case = CASES[name]
    server = make_server(appendonly=True, appendfsync="always")
    if not case.lifespan:
        http = client_for(case, server.url)  # each request on a loop of its own
        try:
            outage_round(http, server, case)
        finally:
            for store in OPENED:
                asyncio.run(store.aclose())
            OPENED.clear()
        return
    with client_for(case, server.url) as http:
        try:
            outage_round(http, server, case)
        finally:
            close_stores(http)


# -- Django: the README's settings, through Django's own WSGI handler ------------------------


@pytest.fixture
def django_wsgi() -> Iterator[Any]:
    from tests.integrations import djangokit

    djangokit.configure()
    from django.core.wsgi import get_wsgi_application

    yield get_wsgi_application()


# Known gap: with CSRF_USE_SESSIONS, CsrfViewMiddleware reads the session before any view
# runs, outside StoreUnavailableMiddleware's process_exception: Django answers 500.
CSRF_GAP = pytest.mark.xfail(strict=True, reason="Django: a load in CsrfViewMiddleware is 500")


@pytest.mark.parametrize(
    "csrf_use_sessions",
    [pytest.param(False, id="plain"), pytest.param(True, id="csrf-in-session", marks=CSRF_GAP)],
)
def test_django_redis_stopped_between_two_requests_is_503_then_200(
    django_wsgi: Any, make_server: Any, csrf_use_sessions: bool
) -> None:
    # With CSRF_USE_SESSIONS, CsrfViewMiddleware reads the session before any view runs: a
    # failure there never reaches process_exception and was Django's 500.
    from django.test import override_settings

    from tests.integrations.djangokit import FAST_FAIL

    server = make_server(appendonly=True, appendfsync="always")
    settings = {"url": server.url, "prefix": "sess:", "connect": FAST_FAIL}
    case = Case(lambda url: None, asgi=False, down=[("/", True), ("/", False)], cookie="sessionid")
    transport = httpx.WSGITransport(app=django_wsgi, raise_app_exceptions=False)
    with (
        override_settings(REDIS_SESSIONS=settings, CSRF_USE_SESSIONS=csrf_use_sessions),
        httpx.Client(transport=transport, base_url="http://testserver") as http,
    ):
        outage_round(http, server, case, count_path="/")
