"""Aggregates over the stored sessions, computed while streaming `store.sessions()`.

Nothing is kept per session: counters and histograms only, and a bounded user tally, so a
million sessions cost the same memory as a hundred. Each scan has a time budget; past it the
figures describe the sessions seen so far and say so.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ..store._layouts import SessionInfo

__all__ = [
    "AGE_BUCKETS",
    "IDLE_BUCKETS",
    "TTL_BUCKETS",
    "Stats",
    "StatsCache",
    "aclose",
    "collect",
]

# (upper bound in seconds, exclusive; label). The last bucket has no bound.
TTL_BUCKETS: tuple[tuple[float, str], ...] = (
    (60, "< 1 min"),
    (600, "< 10 min"),
    (3600, "< 1 h"),
    (6 * 3600, "< 6 h"),
    (86400, "< 1 day"),
    (7 * 86400, "< 7 days"),
    (float("inf"), "≥ 7 days"),
)
AGE_BUCKETS: tuple[tuple[float, str], ...] = (
    (60, "< 1 min"),
    (600, "< 10 min"),
    (3600, "< 1 h"),
    (6 * 3600, "< 6 h"),
    (86400, "< 1 day"),
    (7 * 86400, "< 7 days"),
    (30 * 86400, "< 30 days"),
    (float("inf"), "≥ 30 days"),
)
IDLE_BUCKETS = TTL_BUCKETS
NO_EXPIRY = "no expiry"
UNKNOWN = "unknown"

# The user tally is pruned to its most common entries past this many distinct users.
_MAX_USERS = 5000
_KEEP_USERS = 1000


def bucket(seconds: float, buckets: tuple[tuple[float, str], ...]) -> str:
    """The label of the bucket `seconds` falls in."""
    for bound, label in buckets:
        if seconds < bound:
            return label
    return buckets[-1][1]


@dataclass
class Stats:
    """What the stats panel and page show.

    `complete` is False when the scan stopped at its time budget (figures are then lower
    bounds over the first `count` sessions); `users_approximate` when the user tally was pruned.
    """

    count: int = 0
    memory: int = 0
    with_user: int = 0
    ttl: Counter[str] = field(default_factory=Counter)
    age: Counter[str] = field(default_factory=Counter)
    idle: Counter[str] = field(default_factory=Counter)
    users: Counter[str] = field(default_factory=Counter)
    users_approximate: bool = False
    complete: bool = True
    elapsed_s: float = 0.0

    def add(self, info: SessionInfo, now_ms: int) -> None:
        """Count one session."""
        self.count += 1
        self.memory += info.size or 0
        if info.ttl_ms < 0:
            self.ttl[NO_EXPIRY] += 1
        else:
            self.ttl[bucket(info.ttl_ms / 1000, TTL_BUCKETS)] += 1
        if info.created_ms is None:
            self.age[UNKNOWN] += 1
        else:
            self.age[bucket(max(0, now_ms - info.created_ms) / 1000, AGE_BUCKETS)] += 1
        if info.idle_s is None:
            self.idle[UNKNOWN] += 1
        else:
            self.idle[bucket(info.idle_s, IDLE_BUCKETS)] += 1
        if info.user is not None:
            self.with_user += 1
            self.users[info.user] += 1
            if len(self.users) > _MAX_USERS:
                self.users = Counter(dict(self.users.most_common(_KEEP_USERS)))
                self.users_approximate = True

    def series(self, name: str) -> list[tuple[str, int]]:
        """(label, count) rows of the ``ttl``, ``age`` or ``idle`` histogram, in bucket order;
        "no expiry" / "unknown" only when non-zero."""
        counts: Counter[str] = getattr(self, name)
        buckets = AGE_BUCKETS if name == "age" else TTL_BUCKETS
        rows = [(label, counts[label]) for _, label in buckets]
        extra = NO_EXPIRY if name == "ttl" else UNKNOWN
        if counts[extra]:
            rows.append((extra, counts[extra]))
        return rows


async def aclose(iterator: AsyncIterator[Any]) -> None:
    """Close an async generator left early, so its pending SCAN state is dropped now."""
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


async def collect(store: Any, user_field: str, budget_s: float) -> Stats:
    """Stream every session's metadata into a `Stats`, stopping after `budget_s` seconds."""
    stats = Stats()
    started = time.monotonic()
    now_ms = int(time.time() * 1000)
    iterator = store.sessions(user_field=user_field)
    try:
        async for info in iterator:
            stats.add(info, now_ms)
            if time.monotonic() - started > budget_s:
                stats.complete = False
                break
    finally:
        await aclose(iterator)
    stats.elapsed_s = time.monotonic() - started
    return stats


class StatsCache:
    """The last `Stats`, reused for `max_age` seconds: the list page auto-refreshes, and a
    full scan per refresh per open browser tab would be wasteful."""

    def __init__(self, max_age: float) -> None:
        self.max_age = max_age
        self._stats: Stats | None = None
        self._at = 0.0

    async def get(self, store: Any, user_field: str, budget_s: float) -> Stats:
        """The cached stats if fresh, else a new scan."""
        now = time.monotonic()
        if self._stats is None or now - self._at >= self.max_age:
            self._stats = await collect(store, user_field, budget_s)
            self._at = time.monotonic()
        return self._stats

    def invalidate(self) -> None:
        """Forget the cached stats (after a delete)."""
        self._stats = None
