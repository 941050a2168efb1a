"""Helpers for the Flask, Bottle and Falcon integration tests: examples, round trips, cookies."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

from redis_sessions import AsyncRedisStore, ConnectOptions, RedisStore, connect, connect_async
from tests.support.servers import RoundTrips as RoundTrips  # re-exported for the tests here

SECRET = "wsgi-frameworks-secret-0123456789"

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


def example(module: str) -> ModuleType:
    """Import ``examples/<module>.py`` ("flask_app.app"); the repository root is not on
    sys.path in tests."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module(f"examples.{module}")


def sync_store(url: str) -> RedisStore:
    """A sync store on `url` whose calls fail within about a second when the server is gone."""
    return RedisStore(connect(url, FAST_FAIL))


def async_store(url: str) -> AsyncRedisStore:
    """The asyncio twin of `sync_store`."""
    return AsyncRedisStore(connect_async(url, FAST_FAIL))


def cookie_attrs(set_cookie: str) -> dict[str, str]:
    """The attributes of one Set-Cookie header, lower-cased names ("" for flags)."""
    parts = [p.strip() for p in set_cookie.split(";")]
    attrs = {}
    for part in parts[1:]:
        name, _, value = part.partition("=")
        attrs[name.lower()] = value
    return attrs


def cookie_value(set_cookie: str) -> str:
    """The value of one Set-Cookie header."""
    return set_cookie.split(";", 1)[0].split("=", 1)[1]
