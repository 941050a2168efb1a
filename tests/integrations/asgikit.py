"""Helpers for the Litestar and Quart integration tests: example loading, round-trip counts."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import redis

from redis_sessions import AsyncRedisStore, ConnectOptions, connect_async
from redis_sessions.engine import handle_for
from tests.support.servers import RoundTrips as RoundTrips  # re-exported for the tests here

SECRET = "asgi-integration-secret-0123456789"

# A store call on a dead server fails fast (the fault tests' settings).
FAST_FAIL = ConnectOptions(
    socket_timeout=0.5,
    socket_connect_timeout=0.25,
    retries=1,
    backoff_base=0.05,
    backoff_cap=0.25,
    health_check_interval=1,
)

ROOT = Path(__file__).resolve().parents[2]


def example(name: str) -> ModuleType:
    """Import ``examples/<name>/app.py`` (the repository root is not on sys.path in tests)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module(f"examples.{name}.app")


def make_store(url: str) -> AsyncRedisStore:
    """A store on `url` whose calls fail within about a second when the server is gone."""
    return AsyncRedisStore(connect_async(url, FAST_FAIL))


def session_id(cookie_value: str) -> str:
    """The session id inside a signed cookie value ("id.signature")."""
    return cookie_value.split(".", 1)[0]


def stored(client: redis.Redis, cookie_value: str) -> bool:
    """Whether Redis holds the session of that cookie value."""
    return bool(client.exists(f"sess:{{{handle_for(session_id(cookie_value))}}}"))


def assert_503(status: int, headers: Any) -> None:
    """The store-down answer: 503, Retry-After, and no session cookie."""
    assert status == 503
    assert headers["retry-after"] == "5"
    assert "set-cookie" not in headers
