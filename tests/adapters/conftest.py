"""Fixtures for adapter tests: both adapters against a real server, one client API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.adapters.adapterkit import RoundTrips, make_client


@pytest.fixture(params=["asgi", "wsgi"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(kind: str, redis_url: str, clean_redis: redis.Redis) -> Iterator[Any]:
    http, store = make_client(kind, redis_url)
    with http:
        http.store = store
        http.trips = RoundTrips(store)
        yield http
