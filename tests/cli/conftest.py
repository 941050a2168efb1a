"""CLI test fixtures: a server seeded with a known set of sessions through the library."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from redis_sessions import RedisStore
from tests.cli.clikit import Seeded


@pytest.fixture
def seeded(clean_redis: redis.Redis, redis_url: str) -> Iterator[Seeded]:
    """Seven sessions under ``sess:`` (alice x3, bob x2, carol as a dict, one anonymous) and
    keys that are not sessions (another prefix, a plain key)."""
    store = RedisStore(url=redis_url)
    result = Seeded(redis_url, clean_redis, store)
    sessions: list[tuple[str, dict[str, Any], float]] = [
        ("alice-1", {"user": "alice", "views": 3, "cart": [1, {"sku": "x-9"}]}, 30),
        ("alice-2", {"user": "alice", "views": 1}, 300),
        ("alice-3", {"user": "alice", "theme": "dark"}, 3 * 3600),
        ("bob-1", {"user": "bob", "views": 7}, 10 * 3600),
        ("bob-2", {"user": "bob"}, 2 * 86400),
        ("carol-1", {"user": {"name": "carol", "id": 3}, "views": 2}, 86400 - 1),
        ("anon-1", {"views": 1, "note": "é ✓"}, 20 * 60),
    ]
    for handle, data, ttl in sessions:
        assert store.set(handle, data, ttl=ttl)
        result.data[handle] = data
    # A session created two days ago, by its "$c" metadata field.
    clean_redis.hset(result.key("bob-2"), "$c", str(int(time.time() * 1000) - 2 * 86400_000))
    RedisStore(client=clean_redis, prefix="other:").set("other-1", {"user": "mallory"})
    clean_redis.set("unrelated", "keep me")
    try:
        yield result
    finally:
        store.close()
