"""Session statistics and human units for the tools: ``redis-sessions`` and the dashboard.

No I/O: the callers stream `SessionInfo` rows in and print or render what comes out. Both
tools take their buckets, labels and units from here, so they always agree:

- one duration format, the two largest units floored and written as one word (``"42s"``,
  ``"5m3s"``, ``"2h30m"``, ``"3d4h"``), which keeps the CLI's columns split by whitespace;
- one mark, `UNKNOWN` (``"—"``), for a value the server did not give (``"?"`` is what the CLI
  prints for an unprintable character, so it would be ambiguous);
- `SessionStats`, the one-pass summary in bounded memory: counters, `Histogram` buckets and
  a `TopCounter` of users, so a million sessions cost the memory of a hundred.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import SessionInfo

__all__ = [
    "AGE_EDGES",
    "IDLE_EDGES",
    "NO_EXPIRY",
    "TTL_EDGES",
    "UNKNOWN",
    "Histogram",
    "SessionStats",
    "TopCounter",
    "age_s",
    "human_age",
    "human_bytes",
    "human_duration",
    "human_ttl",
    "iso_time",
]

UNKNOWN = "—"
"""What every tool shows for a value the server did not give (size, idle time, creation)."""

NO_EXPIRY = "no expiry"
"""The histogram bucket of keys without a TTL."""

_MINUTE, _HOUR, _DAY = 60, 3600, 86400

# Bucket upper bounds in seconds; the last bucket is open-ended. 30 days is the default lifetime.
TTL_EDGES: tuple[int, ...] = (_MINUTE, 10 * _MINUTE, _HOUR, 6 * _HOUR, _DAY, 7 * _DAY)
AGE_EDGES: tuple[int, ...] = (*TTL_EDGES, 30 * _DAY)
IDLE_EDGES: tuple[int, ...] = TTL_EDGES


def human_duration(seconds: float | None) -> str:
    """The two largest non-zero units, floored: ``"42s"``, ``"5m3s"``, ``"2h30m"``, ``"3d4h"``,
    ``"2d"``; `UNKNOWN` for None, ``"0s"`` for zero or less."""
    if seconds is None:
        return UNKNOWN
    # Floored, so a TTL never reads longer than what is left ("1d" is not shown at 23h59m).
    total = int(max(seconds, 0.0))
    days, rest = divmod(total, _DAY)
    hours, rest = divmod(rest, _HOUR)
    minutes, secs = divmod(rest, _MINUTE)
    parts = ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s"))
    first = next(i for i, (count, unit) in enumerate(parts) if count or unit == "s")
    text = "".join(f"{count}{unit}" for count, unit in parts[first : first + 2] if count)
    return text or "0s"


def human_ttl(ttl_ms: int) -> str:
    """A TTL from PTTL in milliseconds; ``"none"`` for a key without expiry (negative)."""
    return "none" if ttl_ms < 0 else human_duration(ttl_ms / 1000)


def human_bytes(size: int | None) -> str:
    """Binary units: ``"512 B"``, ``"1.2 KiB"``, ``"3.4 MiB"`` up to TiB; `UNKNOWN` for None."""
    if size is None:
        return UNKNOWN
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def age_s(info: SessionInfo, now_ms: int) -> float | None:
    """Seconds since the session was created, None if its creation time is unknown."""
    if info.created_ms is None:
        return None
    return max(now_ms - info.created_ms, 0) / 1000


def human_age(info: SessionInfo, now_ms: int) -> str:
    """`age_s` as a `human_duration` (`UNKNOWN` without a creation time)."""
    return human_duration(age_s(info, now_ms))


def iso_time(ms: int) -> str:
    """UTC timestamp of epoch milliseconds, to the second: ``"2026-11-23 20:49:35 UTC"``."""
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _bucket_labels(edges: Sequence[int]) -> list[str]:
    labels = [f"< {human_duration(edges[0])}"]
    labels += [f"{human_duration(lo)}-{human_duration(hi)}" for lo, hi in pairwise(edges)]
    labels.append(f">= {human_duration(edges[-1])}")
    return labels


@dataclass
class Histogram:
    """Counts of values (seconds) in the buckets cut at `edges`, plus one `special` bucket
    (e.g. "no expiry") for values that have no duration."""

    edges: tuple[int, ...]
    special: str
    counts: list[int] = field(init=False)
    special_count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.edges) + 1)

    def add(self, seconds: float | None) -> None:
        """Count one value; None goes to the special bucket."""
        if seconds is None:
            self.special_count += 1
            return
        index = 0
        while index < len(self.edges) and seconds >= self.edges[index]:
            index += 1
        self.counts[index] += 1

    def below(self, seconds: int) -> int:
        """How many values fell in the buckets that end at or before `seconds` (an edge)."""
        return sum(count for edge, count in zip(self.edges, self.counts) if edge <= seconds)

    def buckets(self) -> list[tuple[str, int]]:
        """(label, count) of every bucket, the special one last (only when non-empty)."""
        rows = list(zip(_bucket_labels(self.edges), self.counts))
        if self.special_count:
            rows.append((self.special, self.special_count))
        return rows


class TopCounter:
    """The most frequent values in bounded memory (Misra-Gries heavy hitters).

    At most `capacity` counters are kept, whatever the input. Counts are exact while at most
    `capacity` distinct values were seen (`exact` stays True); past that, the reported counts
    are lower bounds and every value seen more than n / (capacity + 1) times is still reported.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        """Keep at most `capacity` counters."""
        self.capacity = capacity
        self.counts: dict[str, int] = {}
        self.exact = True

    def add(self, value: str) -> None:
        """Count one occurrence."""
        counts = self.counts
        if value in counts:
            counts[value] += 1
        elif len(counts) < self.capacity:
            counts[value] = 1
        else:
            # Decrement everything once (the new value included): each pass takes `capacity`
            # units off a total that only `add` raises, so the work stays linear.
            self.exact = False
            self.counts = {k: c - 1 for k, c in counts.items() if c > 1}

    @property
    def distinct(self) -> int | None:
        """How many distinct values were seen, None once past `capacity` (then unknown)."""
        return len(self.counts) if self.exact else None

    def top(self, n: int) -> list[tuple[str, int]]:
        """The `n` highest counts, highest first (ties by name)."""
        return sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))[:n]


class SessionStats:
    """What ``redis-sessions stats`` and the dashboard's stats page report, accumulated one
    `SessionInfo` at a time.

    `complete` is set to False by a caller that stopped early (the dashboard's time budget):
    the figures then describe the first `count` sessions only.
    """

    def __init__(self, now_ms: int, top: int = 10, user_capacity: int = 10_000) -> None:
        """Ages are measured at `now_ms`; `top` users go into `as_json`; `user_capacity`
        bounds the user tally (see `TopCounter`)."""
        self.now_ms = now_ms
        self.top_n = top
        self.count = 0
        self.memory = 0
        self.memory_unknown = 0
        self.with_user = 0
        self.ttl = Histogram(TTL_EDGES, NO_EXPIRY)
        self.age = Histogram(AGE_EDGES, "unknown")
        self.idle = Histogram(IDLE_EDGES, "unknown")
        self.users = TopCounter(user_capacity)
        self.complete = True
        self.elapsed_s = 0.0

    def add(self, info: SessionInfo) -> None:
        """Account for one session."""
        self.count += 1
        if info.size is None:
            self.memory_unknown += 1
        else:
            self.memory += info.size
        self.ttl.add(None if info.ttl_ms < 0 else info.ttl_ms / 1000)
        self.age.add(age_s(info, self.now_ms))
        self.idle.add(info.idle_s)
        if info.user is not None:
            self.with_user += 1
            self.users.add(info.user)

    @property
    def average_size(self) -> float | None:
        """Mean MEMORY USAGE of the sessions that reported one."""
        measured = self.count - self.memory_unknown
        return self.memory / measured if measured else None

    def as_json(self) -> dict[str, Any]:
        """The ``stats --json`` document."""
        average = self.average_size
        return {
            "count": self.count,
            "memory_bytes": self.memory,
            "memory_unknown": self.memory_unknown,
            "average_size": None if average is None else round(average, 1),
            "with_user": self.with_user,
            "distinct_users": self.users.distinct,
            "ttl": [{"bucket": b, "count": c} for b, c in self.ttl.buckets()],
            "age": [{"bucket": b, "count": c} for b, c in self.age.buckets()],
            "top_users": [{"user": u, "sessions": c} for u, c in self.users.top(self.top_n)],
            "top_users_exact": self.users.exact,
        }
