"""Pure pieces of the dashboard: the SVG chart and the stats page (units and the stats
accumulator are `redis_sessions._report`'s, tested in tests/unit/test_report.py)."""

from __future__ import annotations

import re

from redis_sessions._report import SessionStats
from redis_sessions.dashboard import _render
from tests.support.factories import session_info as info


def test_bar_chart_scales_bars_and_escapes_labels() -> None:
    svg = _render.bar_chart("<T>", [("a<b", 1000), ("tiny", 1), ("none", 0)])
    widths = [int(w) for w in re.findall(r'width="(\d+)" height="18" rx="3" fill="#2', svg)]
    assert widths == [330, 2, 0]  # a non-zero bucket stays visible
    assert "<title>&lt;T&gt;</title>" in svg and "a&lt;b" in svg and "1,000" in svg
    assert _render.bar_chart("empty", []).startswith("<svg")


def test_stats_count_unknowns_and_prune_the_user_tally() -> None:
    stats = SessionStats(now_ms=10_000, user_capacity=3)
    stats.add(info(created_ms=None, ttl_ms=-1))
    for name in ("a", "a", "a", "b", "b", "c", "d"):
        stats.add(info(user=name, idle_s=5, size=10))
    assert stats.count == 8 and stats.memory == 70 and stats.with_user == 7
    assert dict(stats.ttl.buckets())["no expiry"] == 1
    assert dict(stats.age.buckets())["unknown"] == 1
    assert dict(stats.idle.buckets())["unknown"] == 1
    # Past its capacity the tally is Misra-Gries: the counts are lower bounds.
    assert not stats.users.exact and stats.users.top(1) == [("a", 2)]
    page = _render.stats_body(root="", stats=stats, top=5, refresh=0, paused=False)
    assert "approximate" in page and "Refreshes every" not in page
    assert '<div class="v">3+</div>' in page  # more distinct users than the tally holds
