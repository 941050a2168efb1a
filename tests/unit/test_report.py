"""The tools layer (`redis_sessions._report`): units, buckets, the bounded user counter and the
one-pass statistics shared by ``redis-sessions stats`` and the dashboard (pure, no server)."""

from __future__ import annotations

import pytest

from redis_sessions._report import (
    AGE_EDGES,
    IDLE_EDGES,
    NO_EXPIRY,
    TTL_EDGES,
    UNKNOWN,
    Histogram,
    SessionStats,
    TopCounter,
    age_s,
    human_age,
    human_bytes,
    human_duration,
    human_ttl,
    iso_time,
)
from redis_sessions.cli._format import json_row
from tests.support.factories import session_info as info


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "—"),
        (-5, "0s"),
        (0, "0s"),
        (59.9, "59s"),
        (60, "1m"),
        (61, "1m1s"),
        (3599, "59m59s"),
        (3600, "1h"),
        (3660, "1h1m"),
        (5400, "1h30m"),
        (86399, "23h59m"),
        (86400, "1d"),
        (90000, "1d1h"),
        (2 * 86400 + 59, "2d"),  # the two largest units: the seconds are dropped
        (9.99 * 86400, "9d23h"),
        (45 * 86400, "45d"),
    ],
)
def test_human_duration(seconds: float | None, text: str) -> None:
    assert human_duration(seconds) == text
    assert " " not in text  # one word: the CLI's columns stay split by whitespace


def test_human_ttl_and_bytes() -> None:
    assert human_ttl(-1) == "none"
    assert human_ttl(90_000) == "1m30s"
    assert [
        human_bytes(n)
        for n in (None, 0, 1023, 1024, 1250, 1536, 5 * 1024**2, 3 * 1024**4, 2048 * 1024**4)
    ] == ["—", "0 B", "1023 B", "1.0 KiB", "1.2 KiB", "1.5 KiB", "5.0 MiB", "3.0 TiB", "2048.0 TiB"]


def test_one_mark_for_unknown_values() -> None:
    assert UNKNOWN == "—"
    assert human_duration(None) == human_bytes(None) == human_age(info(created_ms=None), 0)
    assert human_age(info(created_ms=None), 0) == UNKNOWN


def test_ages_and_times() -> None:
    assert age_s(info(created_ms=1_000), now_ms=91_000) == 90.0
    assert age_s(info(created_ms=5_000), now_ms=1_000) == 0.0  # a clock step back: not negative
    assert age_s(info(created_ms=None), now_ms=1_000) is None
    assert human_age(info(created_ms=0), now_ms=9_000_000) == "2h30m"
    assert iso_time(1_700_000_000_000) == "2023-11-14 22:13:20 UTC"


def test_histogram_buckets() -> None:
    histogram = Histogram((60, 3600), "no expiry")
    for value in (0, 59.9, 60, 3599, 3600, 10**9, None):
        histogram.add(value)
    assert histogram.buckets() == [("< 1m", 2), ("1m-1h", 2), (">= 1h", 2), ("no expiry", 1)]
    assert Histogram((60,), "x").buckets() == [("< 1m", 0), (">= 1m", 0)]


def test_bucket_edges_and_labels() -> None:
    ttl = Histogram(TTL_EDGES, NO_EXPIRY)
    for value in (0, 60, float("inf")):
        ttl.add(value)
    assert ttl.buckets() == [
        ("< 1m", 1),
        ("1m-10m", 1),
        ("10m-1h", 0),
        ("1h-6h", 0),
        ("6h-1d", 0),
        ("1d-7d", 0),
        (">= 7d", 1),
    ]
    assert [label for label, _ in Histogram(AGE_EDGES, "unknown").buckets()][-2:] == [
        "7d-30d",
        ">= 30d",
    ]
    assert IDLE_EDGES == TTL_EDGES


def test_histogram_below_an_edge() -> None:
    histogram = Histogram(TTL_EDGES, NO_EXPIRY)
    for value in (0, 59, 60, 599, 600, 3599, 3600, None):
        histogram.add(value)
    assert histogram.below(60) == 2
    assert histogram.below(3600) == 6  # "within the hour": 3600 itself is not below it
    assert histogram.below(0) == 0


def test_top_counter_is_exact_within_capacity() -> None:
    counter = TopCounter(capacity=3)
    for user in "aaabbc":
        counter.add(user)
    assert counter.exact and counter.top(2) == [("a", 3), ("b", 2)]
    assert counter.distinct == 3


def test_top_counter_keeps_heavy_hitters_in_bounded_memory() -> None:
    counter = TopCounter(capacity=10)
    for i in range(10_000):
        counter.add("heavy" if i % 3 == 0 else f"rare-{i}")
        assert len(counter.counts) <= 10
    assert not counter.exact and counter.distinct is None
    ((user, count),) = counter.top(1)
    # Misra-Gries: under-counts by at most n / (capacity + 1).
    assert user == "heavy" and 3334 - 10_000 / 11 <= count <= 3334


def test_stats_with_unknown_values() -> None:
    unknown = info(ttl_ms=-1, created_ms=None, fields=0)
    stats = SessionStats(now_ms=0)
    stats.add(unknown)
    document = stats.as_json()
    assert document["memory_unknown"] == 1 and document["average_size"] is None
    assert document["ttl"][-1] == {"bucket": "no expiry", "count": 1}
    assert document["age"][-1] == {"bucket": "unknown", "count": 1}
    assert json_row(unknown, 0)["age_s"] is None


def test_stats_idle_series_average_and_completeness() -> None:
    stats = SessionStats(now_ms=100_000, top=1)
    stats.add(info(idle_s=5, size=100, user="a"))
    stats.add(info(idle_s=4000, size=300, user="a"))
    stats.add(info(idle_s=None, size=None, user="b"))
    assert dict(stats.idle.buckets()) == {
        "< 1m": 1,
        "1m-10m": 0,
        "10m-1h": 0,
        "1h-6h": 1,
        "6h-1d": 0,
        "1d-7d": 0,
        ">= 7d": 0,
        "unknown": 1,
    }
    assert stats.average_size == 200.0  # over the sessions that reported a size
    assert stats.complete and stats.elapsed_s == 0.0  # until a caller stops early
    document = stats.as_json()
    assert document["distinct_users"] == 2 and document["with_user"] == 3
    assert document["top_users"] == [{"user": "a", "sessions": 2}]
    assert "idle" not in document  # `stats --json` keeps its keys
