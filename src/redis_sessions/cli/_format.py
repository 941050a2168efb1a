"""Formatting and aggregation for the ``redis-sessions`` command line (no I/O, no click).

Human units for durations and sizes, the JSON row of a `SessionInfo`, and `Stats`, the
one-pass, bounded-memory summary behind ``redis-sessions stats``.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from ..store._layouts import SessionInfo

__all__ = [
    "AGE_EDGES",
    "TTL_EDGES",
    "Histogram",
    "Stats",
    "TopCounter",
    "age_s",
    "human_bytes",
    "human_duration",
    "human_ttl",
    "iso_time",
    "json_row",
    "json_text",
    "printable",
]

_MINUTE, _HOUR, _DAY = 60, 3600, 86400

# Bucket upper bounds in seconds; the last bucket is open-ended. 30 days is the default lifetime.
TTL_EDGES: tuple[int, ...] = (_MINUTE, 10 * _MINUTE, _HOUR, 6 * _HOUR, _DAY, 7 * _DAY)
AGE_EDGES: tuple[int, ...] = (_MINUTE, 10 * _MINUTE, _HOUR, 6 * _HOUR, _DAY, 7 * _DAY, 30 * _DAY)


def printable(text: str) -> str:
    """`text` with every character a terminal could act on (C0 and C1 controls such as ESC and
    CSI, DEL, bidi and other format characters) shown as ``?``: session data is user input."""
    return text if text.isprintable() else "".join(c if c.isprintable() else "?" for c in text)


def _escaped(char: str) -> str:
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a UTF-16 surrogate pair, as JSON spells characters past the BMP
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_text(document: Any, **options: Any) -> str:
    """``json.dumps(document, ensure_ascii=False, **options)`` with every non-printable
    character escaped as ``\\uXXXX``: json escapes only C0, and a C1 CSI (U+009B) would reach
    the terminal raw. Lossless: the parsed document is the same."""
    text = json.dumps(document, ensure_ascii=False, **options)
    if all(line.isprintable() for line in text.split("\n")):  # the common case, at C speed
        return text
    return "".join(c if c.isprintable() or c == "\n" else _escaped(c) for c in text)


def human_duration(seconds: float | None) -> str:
    """Compact duration: ``"42s"``, ``"3m"``, ``"2.5h"``, ``"4d"``; ``"?"`` when unknown."""
    if seconds is None:
        return "?"
    seconds = max(seconds, 0.0)
    if seconds < _MINUTE:
        return f"{int(seconds)}s"
    if seconds < _HOUR:
        return f"{int(seconds // _MINUTE)}m"
    if seconds < _DAY:
        return _one_decimal(seconds / _HOUR) + "h"
    return _one_decimal(seconds / _DAY) + "d"


def _one_decimal(value: float) -> str:
    # One decimal below 10 ("2.5h"), none above ("14h"); floor so "24.0h" never shows as "24h".
    if value < 10:
        text = f"{math.floor(value * 10) / 10:.1f}"
        return text.removesuffix(".0")
    return str(int(value))


def human_ttl(ttl_ms: int) -> str:
    """A TTL from PTTL: ``"none"`` for a key without expiry (-1)."""
    return "none" if ttl_ms < 0 else human_duration(ttl_ms / 1000)


def human_bytes(size: int | None) -> str:
    """Binary units: ``"512 B"``, ``"1.2 KiB"``, ``"3.4 MiB"``; ``"?"`` when unknown."""
    if size is None:
        return "?"
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


def iso_time(ms: int) -> str:
    """UTC timestamp of epoch milliseconds, to the second."""
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def json_row(info: SessionInfo, now_ms: int) -> dict[str, Any]:
    """The JSON object of one session in ``ls --json`` (raw numbers, no units)."""
    age = age_s(info, now_ms)
    return {
        "key": info.key,
        "handle": info.handle,
        "user": info.user,
        "ttl_ms": info.ttl_ms,
        "created_ms": info.created_ms,
        "age_s": None if age is None else round(age, 3),
        "idle_s": info.idle_s,
        "size": info.size,
        "fields": info.fields,
    }


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

    def buckets(self) -> list[tuple[str, int]]:
        """(label, count) of every bucket, the special one last (only when non-empty)."""
        rows = list(zip(_bucket_labels(self.edges), self.counts))
        if self.special_count:
            rows.append((self.special, self.special_count))
        return rows


class TopCounter:
    """The most frequent users in bounded memory (Misra-Gries heavy hitters).

    Counts are exact while at most `capacity` distinct values were seen (`exact` stays True);
    past that, the reported counts are lower bounds and every value seen more than
    n / (capacity + 1) times is still reported.
    """

    def __init__(self, capacity: int = 10_000) -> None:
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
            # Decrement everything once: each such pass removes at least one counter, so the
            # total work stays linear in the number of values.
            self.exact = False
            self.counts = {k: c - 1 for k, c in counts.items() if c > 1}

    def top(self, n: int) -> list[tuple[str, int]]:
        """The `n` highest counts, highest first (ties by name)."""
        return sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))[:n]


class Stats:
    """What ``redis-sessions stats`` reports, accumulated one `SessionInfo` at a time."""

    def __init__(self, now_ms: int, top: int = 10) -> None:
        self.now_ms = now_ms
        self.top_n = top
        self.count = 0
        self.memory = 0
        self.memory_unknown = 0
        self.with_user = 0
        self.ttl = Histogram(TTL_EDGES, "no expiry")
        self.age = Histogram(AGE_EDGES, "unknown")
        self.users = TopCounter()

    def add(self, info: SessionInfo) -> None:
        """Account for one session."""
        self.count += 1
        if info.size is None:
            self.memory_unknown += 1
        else:
            self.memory += info.size
        self.ttl.add(None if info.ttl_ms < 0 else info.ttl_ms / 1000)
        self.age.add(age_s(info, self.now_ms))
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
            "distinct_users": len(self.users.counts) if self.users.exact else None,
            "ttl": [{"bucket": b, "count": c} for b, c in self.ttl.buckets()],
            "age": [{"bucket": b, "count": c} for b, c in self.age.buckets()],
            "top_users": [{"user": u, "sessions": c} for u, c in self.users.top(self.top_n)],
            "top_users_exact": self.users.exact,
        }
