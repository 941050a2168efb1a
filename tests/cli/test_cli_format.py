"""Units, buckets and the bounded top-users counter of the CLI (pure functions)."""

from __future__ import annotations

import pytest

from redis_sessions import SessionInfo
from redis_sessions.cli._common import safe_url
from redis_sessions.cli._format import (
    Histogram,
    Stats,
    TopCounter,
    human_bytes,
    human_duration,
    human_ttl,
    json_row,
)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "?"),
        (-5, "0s"),
        (0, "0s"),
        (59.9, "59s"),
        (60, "1m"),
        (3599, "59m"),
        (3600, "1h"),
        (5400, "1.5h"),
        (86399, "23h"),
        (86400, "1d"),
        (9.99 * 86400, "9.9d"),
        (45 * 86400, "45d"),
    ],
)
def test_human_duration(seconds: float | None, text: str) -> None:
    assert human_duration(seconds) == text


def test_human_ttl_and_bytes() -> None:
    assert human_ttl(-1) == "none"
    assert human_ttl(90_000) == "1m"
    assert [
        human_bytes(n)
        for n in (None, 0, 1023, 1024, 1250, 5 * 1024**2, 3 * 1024**4, 2048 * 1024**4)
    ] == ["?", "0 B", "1023 B", "1.0 KiB", "1.2 KiB", "5.0 MiB", "3.0 TiB", "2048.0 TiB"]


def test_histogram_buckets() -> None:
    histogram = Histogram((60, 3600), "no expiry")
    for value in (0, 59.9, 60, 3599, 3600, 10**9, None):
        histogram.add(value)
    assert histogram.buckets() == [("< 1m", 2), ("1m-1h", 2), (">= 1h", 2), ("no expiry", 1)]
    assert Histogram((60,), "x").buckets() == [("< 1m", 0), (">= 1m", 0)]


def test_top_counter_is_exact_within_capacity() -> None:
    counter = TopCounter(capacity=3)
    for user in "aaabbc":
        counter.add(user)
    assert counter.exact and counter.top(2) == [("a", 3), ("b", 2)]


def test_top_counter_keeps_heavy_hitters_in_bounded_memory() -> None:
    counter = TopCounter(capacity=10)
    for i in range(10_000):
        counter.add("heavy" if i % 3 == 0 else f"rare-{i}")
        assert len(counter.counts) <= 10
    assert not counter.exact
    ((user, count),) = counter.top(1)
    # Misra-Gries: under-counts by at most n / (capacity + 1).
    assert user == "heavy" and 3334 - 10_000 / 11 <= count <= 3334


def test_stats_with_unknown_values() -> None:
    info = SessionInfo(
        handle="h",
        key="sess:{h}",
        ttl_ms=-1,
        created_ms=None,
        user=None,
        size=None,
        idle_s=None,
        fields=0,
    )
    stats = Stats(now_ms=0)
    stats.add(info)
    document = stats.as_json()
    assert document["memory_unknown"] == 1 and document["average_size"] is None
    assert document["ttl"][-1] == {"bucket": "no expiry", "count": 1}
    assert document["age"][-1] == {"bucket": "unknown", "count": 1}
    assert json_row(info, 0)["age_s"] is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("redis://:pw@h:1/0", "redis://:***@h:1/0"),
        ("rediss://user:p%40ss@h:1/2", "rediss://user:***@h:1/2"),
        ("redis://user@h:1/2", "redis://user@h:1/2"),
        ("redis://:a/b@h:1/0", "redis://:***@h:1/0"),  # an unencoded "/" in the password
        (
            "unix:///run/rs/redis.sock?db=0&password=s3cr3t",
            "unix:///run/rs/redis.sock?db=0&password=***",
        ),
        (
            "redis+sentinel://:pw@h1:26379,h2:26379/mymaster?sentinel_password=SPW&db=1",
            "redis+sentinel://:***@h1:26379,h2:26379/mymaster?sentinel_password=***&db=1",
        ),
        (
            "rediss://h/0?ssl_password=k&ssl_cert_reqs=none&Sentinel_Password=x&auth_token=t&x=1",
            "rediss://h/0?ssl_password=***&ssl_cert_reqs=none&Sentinel_Password=***&auth_token=***&x=1",
        ),
        ("user:pw@h:1", "user:***@h:1"),  # no scheme at all
    ],
)
def test_safe_url_masks_every_password_form(url: str, shown: str) -> None:
    assert safe_url(url) == shown
