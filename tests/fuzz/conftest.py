"""Fixtures of the fuzz suite: each adapter on the session server, with a round-trip counter.

One client per test function, reused by every hypothesis example of that test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.fuzz.fuzzkit import Rig, make_asgi, make_wsgi
from tests.support.servers import RoundTrips


@pytest.fixture
def asgi(redis_url: str, clean_redis: redis.Redis) -> Iterator[Rig]:
    http, store = make_asgi(redis_url)
    with http:  # runs the lifespan: the store is closed at the end
        yield Rig(http, store, RoundTrips(store), clean_redis)


@pytest.fixture
def wsgi(redis_url: str, clean_redis: redis.Redis) -> Iterator[Rig]:
    http, store, app = make_wsgi(redis_url)
    try:
        with http:
            yield Rig(http, store, RoundTrips(store), clean_redis, app)
    finally:
        store.close()
