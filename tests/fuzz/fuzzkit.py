"""Shared pieces of the fuzz suite: secrets, engines, strategies, apps, a round-trip counter.

Nothing here imports from other test directories: the apps below are minimal copies of the
routes the fuzz tests need.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from redis_sessions import (
    AsyncRedisStore,
    JSONSerializer,
    RedisStore,
    SessionConfig,
    connect,
    connect_async,
)
from redis_sessions.asgi import SessionMiddleware as ASGISessions
from redis_sessions.engine import SessionEngine, Signer, is_well_formed, new_id
from redis_sessions.wsgi import SessionMiddleware as WSGISessions
from redis_sessions.wsgi import get_session
from tests.support.servers import RoundTrips

SECRET = "fuzz-secret-0123456789abcdef"
OLD_SECRET = "fuzz-old-secret-0123456789ab"
COOKIE = "session"
SCAN_LIMIT = 8192  # the documented bound of the Cookie header scan
MAX_CANDIDATES = 4  # the documented bound of cookies of our name that are tried

# Every fuzz test: no deadline (a shared CI box), no example database written to the project,
# no "explain" phase (seconds per failure), function-scoped fixtures reused across examples on
# purpose (one server, one client per test).
FUZZ = settings(
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


def fuzz(max_examples: int) -> settings:
    """`FUZZ` with a number of examples sized to keep the whole directory fast."""
    return settings(FUZZ, max_examples=max_examples)


@dataclass
class Rig:
    """An HTTP client on one adapter, its store, its round-trip counter and a Redis client."""

    http: Any
    store: Any
    trips: RoundTrips
    redis: Any
    app: Any = None


def make_engine(serializer: Any = None, max_size: int = 65536) -> SessionEngine:
    """An engine with the fuzz secrets (first signs, both verify)."""
    config = SessionConfig(secret=[SECRET, OLD_SECRET])
    return SessionEngine(config, serializer=serializer or JSONSerializer(), max_size=max_size)


# -- Cookie header strategies ---------------------------------------------------------------

_SIGNER_ENGINE = make_engine()
_FOREIGN = Signer("another-secret-0123456789")
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

# Characters that matter to a Cookie parser, plus controls and non-ASCII.
_NASTY = ';=",\\ \t\r\n\x00\x0b\x0c\x7f\x80\xa0\xff\u2028\u00e9\u202e'
nasty_text = st.text(alphabet=st.one_of(st.sampled_from(_NASTY), st.characters()), max_size=60)


@st.composite
def broken_signed(draw: st.DrawFn) -> str:
    """A value that looks like one of ours but does not verify (or has no well-formed id)."""
    sid = draw(st.sampled_from([new_id(), "short", "x" * 200, "has space" * 3, ""]))
    good = _SIGNER_ENGINE.signer.sign(sid)
    value, _, sig = good.rpartition(".")
    how = draw(st.sampled_from(["flip", "cut", "extend", "id", "foreign", "bare", "dots", "as-is"]))
    if how == "flip" and sig:
        i = draw(st.integers(0, len(sig) - 1))
        other = draw(st.sampled_from(_B64.replace(sig[i], "")))
        return f"{value}.{sig[:i]}{other}{sig[i + 1 :]}"
    if how == "cut":
        return good[: draw(st.integers(0, max(len(good) - 1, 0)))]
    if how == "extend":
        return good + draw(st.sampled_from(["A", "=", ".", "\x00", "é"]))
    if how == "id":
        return f"{new_id()}.{sig}"  # someone else's signature
    if how == "foreign":
        return _FOREIGN.sign(sid or new_id())
    if how == "bare":
        return value
    if how == "dots":
        return f"{value}..{sig}"
    if is_well_formed(sid):  # "as-is" would verify: break the last character instead
        return good[:-1] + ("A" if good[-1] != "A" else "B")
    return good  # validly signed, but the id is not well-formed


def _pair(name: st.SearchStrategy[str], value: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(lambda n, v: f"{n}={v}", name, value)


names = st.one_of(
    st.just(COOKIE),
    st.sampled_from(
        [" session", "session ", "SESSION", "sess", "session\t", "\nsession", '"session"']
    ),
    nasty_text,
)
values = st.one_of(
    nasty_text,
    broken_signed(),
    broken_signed().map(lambda v: f'"{v}"'),
    st.builds(
        lambda c, n: c * n, st.sampled_from(["a", ";", "=", '"', " ", "é"]), st.integers(0, 20_000)
    ),
)
separators = st.sampled_from([";", "; ", " ;", ";;", ",", "\r\n", "\x00", "; \t"])


@st.composite
def junk_header(draw: st.DrawFn) -> str:
    """A Cookie header with no validly signed value of ours in it."""
    kind = draw(st.sampled_from(["text", "latin1", "pairs", "many"]))
    if kind == "text":
        return draw(st.text())
    if kind == "latin1":
        return draw(st.binary(max_size=300)).decode("latin-1")
    if kind == "pairs":
        parts = draw(st.lists(st.one_of(_pair(names, values), nasty_text), max_size=12))
        return draw(separators).join(parts)
    return "; ".join(f"{COOKIE}={draw(values)}" for _ in range(draw(st.integers(1, 40))))


# -- Apps: a read-only route and a writing route ----------------------------------------------


def asgi_app(
    spy: Callable[[Any], None] | None = None,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
) -> Starlette:
    async def get(request: Request) -> JSONResponse:
        if spy is not None:
            spy(request.session)
        return JSONResponse({"keys": len(dict(request.session))})

    async def set_(request: Request) -> JSONResponse:
        request.session["k"] = "v"
        return JSONResponse({"ok": True})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if on_shutdown is not None:
            await on_shutdown()

    return Starlette(lifespan=lifespan, routes=[Route("/get", get), Route("/set", set_)])


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    session = get_session(environ)
    if environ["PATH_INFO"] == "/set":
        session["k"] = "v"
        body: dict[str, Any] = {"ok": True}
    else:
        body = {"keys": len(dict(session))}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]


def make_asgi(url: str, spy: Callable[[Any], None] | None = None) -> tuple[TestClient, Any]:
    """(TestClient, store) of the ASGI middleware on Redis at `url`; use it as a context."""
    store = AsyncRedisStore(connect_async(url))
    app = ASGISessions(asgi_app(spy, store.aclose), store, secret=[SECRET, OLD_SECRET])
    return TestClient(app, base_url="http://testserver", raise_server_exceptions=False), store


def make_wsgi(url: str) -> tuple[httpx.Client, Any, WSGISessions]:
    """(httpx client, store, middleware) of the WSGI middleware on Redis at `url`."""
    store = RedisStore(connect(url))
    app = WSGISessions(wsgi_app, store, secret=[SECRET, OLD_SECRET])
    transport = httpx.WSGITransport(app=app, raise_app_exceptions=False)
    return httpx.Client(transport=transport, base_url="http://testserver"), store, app


def set_cookie_value(headers: httpx.Headers) -> str | None:
    """The value our Set-Cookie header carries, or None when there is none."""
    found = [v for v in headers.get_list("set-cookie") if v.startswith(COOKIE + "=")]
    assert len(found) <= 1, found
    return found[0].split(";", 1)[0].split("=", 1)[1] if found else None
