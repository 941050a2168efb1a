"""Pure pieces of the dashboard: formatting, the SVG chart, the stats accumulator."""

from __future__ import annotations

import re

import pytest

from redis_sessions import SessionInfo
from redis_sessions.dashboard import _render, _stats


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "0s"),
        (0, "0s"),
        (59.9, "59s"),
        (60, "1m"),
        (61, "1m 1s"),
        (3600, "1h"),
        (3660, "1h 1m"),
        (86400, "1d"),
        (90000, "1d 1h"),
    ],
)
def test_durations(seconds: float, text: str) -> None:
    assert _render.fmt_duration(seconds) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (None, "—"),
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KiB"),
        (5 * 2**20, "5.0 MiB"),
        (3 * 2**40, "3072.0 GiB"),
    ],
)
def test_sizes(size: int | None, text: str) -> None:
    assert _render.fmt_bytes(size) == text


def test_bar_chart_scales_bars_and_escapes_labels() -> None:
    svg = _render.bar_chart("<T>", [("a<b", 1000), ("tiny", 1), ("none", 0)])
    widths = [int(w) for w in re.findall(r'width="(\d+)" height="18" rx="3" fill="#2', svg)]
    assert widths == [330, 2, 0]  # a non-zero bucket stays visible
    assert "<title>&lt;T&gt;</title>" in svg and "a&lt;b" in svg and "1,000" in svg
    assert _render.bar_chart("empty", []).startswith("<svg")


def info(**fields: object) -> SessionInfo:
    base: dict[str, object] = dict(
        handle="h",
        key="sess:{h}",
        ttl_ms=1000,
        created_ms=0,
        user=None,
        size=None,
        idle_s=None,
        fields=1,
    )
    return SessionInfo(**{**base, **fields})  # type: ignore[arg-type]


def test_stats_count_unknowns_and_prune_the_user_tally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_stats, "_MAX_USERS", 3)
    monkeypatch.setattr(_stats, "_KEEP_USERS", 2)
    stats = _stats.Stats()
    stats.add(info(created_ms=None, ttl_ms=-1), now_ms=10_000)
    for name in ("a", "a", "a", "b", "b", "c", "d"):
        stats.add(info(user=name, idle_s=5, size=10), now_ms=10_000)
    assert stats.count == 8 and stats.memory == 70 and stats.with_user == 7
    assert dict(stats.series("ttl"))["no expiry"] == 1
    assert dict(stats.series("age"))["unknown"] == 1
    assert dict(stats.series("idle"))["unknown"] == 1
    assert stats.users_approximate and stats.users.most_common(1) == [("a", 3)]
    page = _render.stats_body(root="", stats=stats, top=5, refresh=0, paused=False)
    assert "approximate" in page and "Refreshes every" not in page


def test_bucket_edges() -> None:
    assert _stats.bucket(0, _stats.TTL_BUCKETS) == "< 1 min"
    assert _stats.bucket(60, _stats.TTL_BUCKETS) == "< 10 min"
    assert _stats.bucket(float("inf"), _stats.TTL_BUCKETS) == "≥ 7 days"
