"""The dashboard's scans: `SessionStats` (from `redis_sessions._report`, shared with
``redis-sessions stats``) fed by streaming `store.sessions()`, and a short-lived cache of them.

Nothing is kept per session, so a million sessions cost the same memory as a hundred. Each
scan has a time budget; past it the figures describe the sessions seen so far and say so.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .._report import SessionStats

if TYPE_CHECKING:
    from ..store._async import AsyncRedisStore

__all__ = ["StatsCache", "aclose", "collect"]


async def aclose(iterator: AsyncIterator[Any]) -> None:
    """Close an async generator left early, so its pending SCAN state is dropped now."""
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


async def collect(store: AsyncRedisStore, user_field: str, budget_s: float) -> SessionStats:
    """Stream every session's metadata into a `SessionStats`, stopping after `budget_s`
    seconds (then `complete` is False)."""
    stats = SessionStats(now_ms=int(time.time() * 1000))
    started = time.monotonic()
    iterator = store.sessions(user_field=user_field)
    try:
        async for info in iterator:
            stats.add(info)
            if time.monotonic() - started > budget_s:
                stats.complete = False
                break
    finally:
        await aclose(iterator)
    stats.elapsed_s = time.monotonic() - started
    return stats


class StatsCache:
    """The last `SessionStats`, reused for `max_age` seconds: the list page auto-refreshes, and a
    full scan per refresh per open browser tab would be wasteful."""

    def __init__(self, max_age: float) -> None:
        self.max_age = max_age
        self._stats: SessionStats | None = None
        self._at = 0.0

    async def get(self, store: AsyncRedisStore, user_field: str, budget_s: float) -> SessionStats:
        """The cached stats if fresh, else a new scan."""
        now = time.monotonic()
        if self._stats is None or now - self._at >= self.max_age:
            self._stats = await collect(store, user_field, budget_s)
            self._at = time.monotonic()
        return self._stats

    def invalidate(self) -> None:
        """Forget the cached stats (after a delete)."""
        self._stats = None
