"""Helpers for the dashboard tests: seeding sessions and serving the dashboard in-process."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from redis_sessions import AsyncRedisStore, ConnectOptions, RedisStore, connect_async
from redis_sessions.dashboard import create_dashboard
from redis_sessions.dashboard._security import CSRF_COOKIE

LOOPBACK = ("127.0.0.1", 50000)
TOKEN = "dashboard-test-token-0123456789"

# A dead server must fail a request quickly.
FAST_FAIL = ConnectOptions(
    socket_timeout=0.5,
    socket_connect_timeout=0.25,
    retries=0,
    backoff_base=0.01,
    backoff_cap=0.05,
    health_check_interval=1,
)


def seed(url: str, sessions: list[Mapping[str, Any]], prefix: str = "sess:") -> list[str]:
    """Store each data dict as a session under a fresh handle; returns the handles."""
    from redis_sessions.engine import handle_for, new_id

    store = RedisStore(url=url, prefix=prefix)
    try:
        handles = []
        for data in sessions:
            handle = handle_for(new_id())
            store.set(handle, data, ttl=3600)
            handles.append(handle)
        return handles
    finally:
        store.close()


@contextlib.contextmanager
def serve(
    url: str,
    *,
    mount: str = "",
    client: tuple[str, int] = LOOPBACK,
    connect_options: ConnectOptions | None = None,
    **options: Any,
) -> Iterator[TestClient]:
    """A TestClient on the dashboard (optionally mounted at `mount` in an outer app), for
    Redis at `url`; the store is closed on the client's event loop afterwards."""
    store = AsyncRedisStore(connect_async(url, connect_options))
    if "token" not in options:
        options.setdefault("no_token", True)  # the explicit opt-in of token-less access
    app: Any = create_dashboard(store, **options)
    if mount:
        app = Starlette(routes=[Mount(mount, app)])
    with TestClient(
        app, base_url="http://localhost", client=client, follow_redirects=False
    ) as http:
        try:
            yield http
        finally:
            http.portal.call(store.aclose)


def handle_links(page: str) -> list[str]:
    """The handles linked from a list page, in order."""
    return re.findall(r'href="[^"]*/s/([A-Za-z0-9_-]+)"', page)


def csrf_field(page: str) -> str:
    """The CSRF token of the delete form on a detail page."""
    found = re.search(r'name="csrf" value="([^"]*)"', page)
    assert found, page
    return found.group(1)


def csrf_cookie(http: TestClient) -> str | None:
    """The CSRF cookie the client holds, if any."""
    return http.cookies.get(CSRF_COOKIE)
