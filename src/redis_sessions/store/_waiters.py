"""`Waiters`: the bound on how many requests of this process wait for one session's lock."""

from __future__ import annotations

import threading
import time

__all__ = ["Waiters"]


class Waiters:
    """The requests of this process waiting for each session's lock (`Load.lock_waiters`).

    Each entry is the waiter's deadline: one that leaves without saying so (its flow dropped
    mid-wait) stops counting when its wait would have ended anyway. Threads and asyncio tasks
    both use it; no call blocks.
    """

    __slots__ = ("_guard", "_waiting")

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._waiting: dict[str, list[float]] = {}

    def _live(self, handle: str) -> list[float]:
        now = time.monotonic()
        live = [d for d in self._waiting.get(handle, ()) if d > now]
        if live:
            self._waiting[handle] = live
        else:
            self._waiting.pop(handle, None)
        return live

    def full(self, handle: str, bound: int) -> bool:
        """Whether `bound` requests wait for this session's lock already."""
        with self._guard:
            return len(self._live(handle)) >= bound

    def join(self, handle: str, bound: int, deadline: float) -> bool:
        """Count one more waiter until `deadline`; False (not counted) when full."""
        with self._guard:
            live = self._live(handle)
            if len(live) >= bound:
                return False
            self._waiting[handle] = [*live, deadline]
            return True

    def leave(self, handle: str, deadline: float) -> None:
        """Stop counting a waiter that `join` counted."""
        with self._guard:
            entries = self._waiting.get(handle, [])
            if deadline in entries:
                entries.remove(deadline)
            if not entries:
                self._waiting.pop(handle, None)
