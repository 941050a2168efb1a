"""Helpers for the standalone fault cases (RELIABILITY.md part B, F1-F8 and M1-M4).

`FaultApp` drives a small Starlette app behind the ASGI `SessionMiddleware` with an
`AsyncRedisStore` using the fault-test client settings (`FAULT_OPTIONS`), sends sequential
requests through Starlette's `TestClient`, and records every exchange so that the global
invariants can be checked afterwards (`check_invariants`): I-1 no session key without a TTL,
I-2 no leak of internals in any response, I-3 every 5xx is a 503 with ``Retry-After`` and a
short one-line body, I-4 one WARNING per outage and one INFO on recovery from the
``redis_sessions`` logger (with `capture_store_log`), I-5 no more connections on a server than
the store's pool allows, and none left once the app is closed.

Each case prints its figure on one line starting with ``FIGURE`` (`figure`), for the script that
collects the published numbers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

import pytest
import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from redis_sessions import AsyncRedisStore, ConnectOptions, connect_async
from redis_sessions.asgi import SessionMiddleware, get_session
from redis_sessions.server import LocalServer
from tests.support.servers import wait_until

__all__ = [
    "BUDGET",
    "CLIENT_SLACK",
    "COOKIE",
    "FAULT_OPTIONS",
    "RETRY_AFTER",
    "UNAVAILABLE_BODY",
    "Exchange",
    "FaultApp",
    "capture_store_log",
    "check_invariants",
    "figure",
    "raw_send",
    "sessions_without_ttl",
    "store_log",
]

# The fault-test client settings of RELIABILITY.md B0: a call that cannot be served fails within
# about 2 s (health-check PING and command, two attempts each), so a request answers in < 3 s.
# A small pool: requests here are sequential, so I-5 can catch a handful of leaked connections.
FAULT_OPTIONS = ConnectOptions(
    socket_timeout=0.5,
    socket_connect_timeout=0.25,
    retries=1,
    backoff_base=0.05,
    backoff_cap=0.25,
    health_check_interval=1,
    max_connections=8,
)
BUDGET = 3.0
"""Seconds within which any request must be answered, whatever the fault."""
RETRY_AFTER = 5
COOKIE = "session"
UNAVAILABLE_BODY = "Session store unavailable, please retry shortly.\n"
"""The 503 body for an unreachable store; I-3 accepts any short ``Session ...`` line."""
CLIENT_SLACK = 4
"""I-5: connections a server may hold beyond the app's pool (the check's own, a test's admin
client, a probe)."""
LOGGER = "redis_sessions"
SECRET = "fault-suite-secret-0123456789abcdef"
LEAKS = ("Traceback", "redis.exceptions", "redis_sessions", "127.0.0.1")


def fault_app(on_shutdown: Any = None) -> Starlette:
    """Routes ``/set?k=v...`` (sets every query parameter), ``/get``, ``/logout``, ``/health``."""

    async def set_(request: Request) -> JSONResponse:
        for key, value in request.query_params.items():
            request.session[key] = value
        return JSONResponse({"ok": True})

    async def get(request: Request) -> JSONResponse:
        return JSONResponse(dict(request.session))

    async def logout(request: Request) -> JSONResponse:
        get_session(request).destroy()
        return JSONResponse({"ok": True})

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

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
            Route("/logout", logout),
            Route("/health", health),
        ],
    )


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request and its answer, as recorded by `FaultApp`."""

    path: str
    status: int
    seconds: float
    headers: tuple[tuple[str, str], ...]
    body: str
    started: float  # time.monotonic() when the request was sent
    cookie: str | None  # session cookie value set by the response, if any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


_App = TypeVar("_App", bound="FaultApp")


@dataclass
class FaultApp:
    """The app under test on Redis at `url`, sequential requests, every exchange recorded.
    `options` go to the middleware, `store_options` to the store (``wait_replicas``, ...).

    Use as a context manager (it runs the app's lifespan, which closes the store). Cookies are
    never kept by the client: each request names the session cookie it sends, if any.
    """

    url: str
    options: Mapping[str, Any] = field(default_factory=dict)
    log: list[Exchange] = field(default_factory=list)
    store_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.closed = False  # True once the lifespan ended and the store closed its client
        self.store = AsyncRedisStore(connect_async(self.url, FAULT_OPTIONS), **self.store_options)
        app = SessionMiddleware(
            fault_app(self.store.aclose),
            self.store,
            secret=SECRET,
            retry_after=RETRY_AFTER,
            **self.options,
        )
        # A crash must show up as the 500 a client would get, not as an exception in the test.
        self.http = TestClient(app, raise_server_exceptions=False)

    def __enter__(self: _App) -> _App:
        self.http.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.http.__exit__(exc_type, exc, tb)
        self.closed = True

    def request(self, path: str, cookie: str | None = None) -> Exchange:
        """GET `path` with the session cookie `cookie` (or none); record and return it."""
        self.http.cookies.clear()
        headers = {"cookie": f"{COOKIE}={cookie}"} if cookie else {}
        started = time.monotonic()
        response = self.http.get(path, headers=headers)
        seconds = time.monotonic() - started
        exchange = Exchange(
            path=path,
            status=response.status_code,
            seconds=seconds,
            headers=tuple(response.headers.multi_items()),
            body=response.text,
            started=started,
            cookie=response.cookies.get(COOKIE),
        )
        self.log.append(exchange)
        return exchange

    def read(self, cookie: str) -> dict[str, Any]:
        """The session's data as ``/get`` shows it (asserting a 2xx)."""
        exchange = self.request("/get", cookie)
        assert exchange.ok, f"/get answered {exchange.status}: {exchange.body!r}"
        data: dict[str, Any] = json.loads(exchange.body)
        return data

    def new_session(self, **fields: str) -> str:
        """Create a session holding `fields` and return its cookie value (asserting a 2xx)."""
        exchange = self.request("/set?" + "&".join(f"{k}={v}" for k, v in fields.items()))
        assert exchange.ok and exchange.cookie, f"create answered {exchange.status}"
        return exchange.cookie

    @property
    def unavailable(self) -> list[Exchange]:
        """Every exchange answered with a 5xx."""
        return [e for e in self.log if e.status >= 500]


def figure(case: str, **values: object) -> str:
    """Print ``FIGURE <case> k=v ...`` on one line (collected for docs/reliability.md)."""

    def shown(value: object) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    line = " ".join([f"FIGURE {case}", *(f"{k}={shown(v)}" for k, v in values.items())])
    print("\n" + line, flush=True)
    return line


_NO_TTL_SCRIPT = """
local cursor, found = '0', 0
repeat
  local page = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 5000)
  cursor = page[1]
  for _, k in ipairs(page[2]) do
    if redis.call('PTTL', k) == -1 then found = found + 1 end
  end
until cursor == '0'
return found
"""


def sessions_without_ttl(client: redis.Redis, prefix: str = "sess:") -> int:
    """I-1: how many keys under `prefix` have no TTL (SCAN, server side, in one call)."""
    pattern = "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + "*"
    return int(client.eval(_NO_TTL_SCRIPT, 0, pattern))


def capture_store_log(caplog: pytest.LogCaptureFixture) -> None:
    """Capture the ``redis_sessions`` logger from INFO up: what I-4 checks.

    Call it before the first request; then pass `caplog` to `check_invariants`.
    """
    caplog.set_level(logging.INFO, logger=LOGGER)


def store_log(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The records of the ``redis_sessions`` logger (and its children) at INFO or above."""
    return [
        r
        for r in caplog.records
        if (r.name == LOGGER or r.name.startswith(LOGGER + ".")) and r.levelno >= logging.INFO
    ]


def library_clients(client: redis.Redis) -> int:
    """How many connections the server holds from clients named like ours (`ConnectOptions`)."""
    return sum(1 for c in client.client_list() if c.get("name") == "redis-sessions")


def check_invariants(
    app: FaultApp,
    servers: Iterable[LocalServer],
    extra_ports: Iterable[int] = (),
    *,
    caplog: pytest.LogCaptureFixture | None = None,
    outages: int = 1,
) -> None:
    """Assert I-1 and I-5 on every running server, I-2 and I-3 on every recorded exchange, and
    I-4 on the captured log when `caplog` is given (`outages`: how many the test caused).

    I-4: the ``redis_sessions`` records alternate WARNING (an outage starts), INFO (it ended),
    starting with a WARNING; at most `outages` WARNINGs, at least one if any request answered
    503, and the last record is the INFO when the app's last request succeeded. I-5: a server's
    ``connected_clients`` never exceeds the pool size plus `CLIENT_SLACK`, and once the app is
    closed the server holds none of its connections (polled briefly: the server sees a close on
    its next event-loop turn).
    """
    servers = list(servers)
    limit = (FAULT_OPTIONS.max_connections or 0) + CLIENT_SLACK
    for server in servers:
        if not server.is_running:
            continue
        with redis.Redis.from_url(server.url, socket_timeout=10) as client:
            assert sessions_without_ttl(client) == 0, "I-1: a session key has no TTL"
            connected = int(client.info("clients")["connected_clients"])
            assert connected <= limit, f"I-5: {connected} connections on {server.port} > {limit}"
            if app.closed:
                wait_until(
                    lambda: library_clients(client) == 0,
                    2,
                    message=(
                        f"I-5: {library_clients(client)} connections left open after the app closed"
                    ),
                )
    leaks = LEAKS + tuple(str(s.port) for s in servers) + tuple(str(p) for p in extra_ports)
    for exchange in app.log:
        text = exchange.body + "\n" + "\n".join(f"{k}: {v}" for k, v in exchange.headers)
        for leak in leaks:
            assert leak not in text, f"I-2: {exchange.path} ({exchange.status}) shows {leak!r}"
        if exchange.status >= 500:
            assert exchange.status == 503, f"I-3: {exchange.path} answered {exchange.status}"
            assert exchange.header("retry-after") == str(RETRY_AFTER), "I-3: no Retry-After"
            # The body names the reason (unavailable, full, locked ...): one short line.
            body = exchange.body
            assert (
                body.startswith("Session ")
                and body.endswith("\n")
                and body.count("\n") == 1
                and len(body) <= 120
            ), f"I-3: body {body!r}"
    if caplog is not None:
        check_store_log(app, caplog, outages)


def check_store_log(app: FaultApp, caplog: pytest.LogCaptureFixture, outages: int) -> None:
    """I-4 (see `check_invariants`)."""
    assert logging.getLogger(LOGGER).isEnabledFor(logging.INFO), (
        "I-4 needs the INFO records: call capture_store_log(caplog) before the requests"
    )
    records = store_log(caplog)
    levels = [r.levelname for r in records]
    shown = [f"{r.levelname} {r.getMessage()}" for r in records]
    expected = ["WARNING" if i % 2 == 0 else "INFO" for i in range(len(levels))]
    assert levels == expected, f"I-4: not one WARNING per outage then one INFO: {shown}"
    warnings = levels.count("WARNING")
    assert warnings <= outages, f"I-4: {warnings} WARNINGs for {outages} outage(s): {shown}"
    if app.unavailable:
        assert warnings >= 1, "I-4: requests answered 503 and nothing was logged"
    if app.log and app.log[-1].ok:
        assert levels[-1:] in ([], ["INFO"]), f"I-4: no INFO after recovery: {shown}"


def raw_send(server: LocalServer, *args: str) -> socket.socket:
    """Send one command on a new raw connection without waiting for the reply.

    For commands that block the server (``DEBUG SLEEP``): the caller reads the reply with
    `socket.recv` when the fault is over, and closes the socket.
    """
    sock = socket.create_connection((server.host, server.port), timeout=10)
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    sock.sendall(b"".join(parts))
    return sock
