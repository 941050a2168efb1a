"""Fixtures for the dashboard tests: a clean real server with a few seeded sessions."""

from __future__ import annotations

import pytest
import redis

from tests.dashboard.dashkit import seed


@pytest.fixture
def seeded(redis_url: str, clean_redis: redis.Redis) -> dict[str, str]:
    """Four sessions on a clean server: {label: handle}."""
    handles = seed(
        redis_url,
        [
            {"user": "alice", "cart": [1, 2, 3]},
            {"user": {"name": "bob", "roles": ["admin"]}},
            {"user": "alicia", "theme": "dark"},
            {"visits": 7},
        ],
    )
    return dict(zip(("alice", "bob", "alicia", "anonymous"), handles))
