"""Helpers for adapter tests: both adapters against a real server, one client API."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.testclient import TestClient

from redis_sessions import (
    AsyncRedisStore,
    ConnectOptions,
    RedisStore,
    connect,
    connect_async,
)
from redis_sessions.asgi import SessionMiddleware as ASGISessions
from redis_sessions.wsgi import SessionMiddleware as WSGISessions
from tests.adapters.apps import SECRET, asgi_app, wsgi_app
from tests.support.servers import RoundTrips as RoundTrips  # re-exported for the tests here

# Fault-test client settings: a call that cannot be served fails within ~2 s, health check
# included (with retries=2 a health-check PING plus the command can take 6 x 0.5 s).
FAST_FAIL = ConnectOptions(
    socket_timeout=0.5,
    socket_connect_timeout=0.25,
    retries=1,
    backoff_base=0.05,
    backoff_cap=0.25,
    health_check_interval=1,
)


def make_client(
    kind: str,
    url: str,
    connect_options: ConnectOptions | None = None,
    base_url: str = "http://testserver",
    store_options: dict[str, Any] | None = None,
    **options: Any,
) -> tuple[Any, Any]:
    """(http client, store) for the ASGI ("asgi") or WSGI ("wsgi") app on Redis at `url`."""
    options.setdefault("secret", SECRET)
    if kind == "asgi":
        store: Any = AsyncRedisStore(connect_async(url, connect_options), **(store_options or {}))
        app = ASGISessions(asgi_app(options.pop("gate", None), store.aclose), store, **options)
        return TestClient(app, base_url=base_url, raise_server_exceptions=False), store
    store = RedisStore(connect(url, connect_options), **(store_options or {}))
    wsgi = WSGISessions(wsgi_app, store, **options)
    transport = httpx.WSGITransport(app=wsgi, raise_app_exceptions=False)
    return httpx.Client(transport=transport, base_url=base_url), store
