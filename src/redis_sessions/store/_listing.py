"""Listing sessions: `SessionInfo`, what an operator sees of one, and the decoding of the
describe replies into it; `Dedup`, for SCAN's repeated keys.

The rows are those of the DESCRIBE script (`_scripts.DESCRIBE`): per key ``{idle s, pttl ms,
memory bytes, fields, {$c, user}}``, 0 for a key gone or not a hash, -1 where the server
refuses OBJECT or MEMORY. On a Cluster the same row comes from five plain commands per key
(`describe_calls`, `cluster_rows`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .._record import CREATED
from .._serializers import Serializer
from ._commands import Call

__all__ = ["Dedup", "SessionInfo", "cluster_rows", "describe_calls", "session_infos"]


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What an operator sees of a stored session (no data, no id: the id is never stored).

    Attributes:
        handle: the session's handle (the SHA-256 of its id); `key` is its Redis key.
        ttl_ms: remaining time to live in ms (-1: no expiry).
        created_ms: creation time (ms since the epoch), None if the payload is not ours.
        user: the value of the user field (``"user"`` by default), as text, if any.
        size: bytes of memory Redis uses for the key (MEMORY USAGE), if available.
        idle_s: seconds since the key was last read or written (OBJECT IDLETIME), if available.
        fields: number of hash fields (top-level keys plus metadata).
    """

    handle: str
    key: str
    ttl_ms: int
    created_ms: int | None
    user: str | None
    size: int | None
    idle_s: int | None
    fields: int


class Dedup:
    """Remembers handles already returned (SCAN may return a key more than once)."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def fresh(self, handles: Iterable[str]) -> list[str]:
        """The handles not returned before."""
        out = [h for h in dict.fromkeys(handles) if h not in self.seen]
        self.seen.update(out)
        return out


# The commands per key of a Cluster's describe, in the order `cluster_rows` reads them. OBJECT
# IDLETIME comes first: the others would reset the idle clock it reports.
_PER_KEY = 5


def describe_calls(key: str, user: str) -> tuple[Call, ...]:
    """The plain commands that give one key's DESCRIBE row on a Cluster (`user`: its field)."""
    return (
        Call(("OBJECT", "IDLETIME", key)),
        Call(("PTTL", key)),
        Call(("MEMORY", "USAGE", key, "SAMPLES", "0")),
        Call(("HLEN", key)),
        Call(("HMGET", key, CREATED, user)),
    )


def cluster_rows(replies: list[Any]) -> list[Any]:
    """The DESCRIBE rows of the replies to `describe_calls` (for each key, in one pipeline)."""
    rows: list[Any] = []
    for i in range(0, len(replies), _PER_KEY):
        idle, pttl, size, length, meta = replies[i : i + _PER_KEY]
        if isinstance(length, Exception) or isinstance(meta, Exception) or idle is None:
            rows.append(0)  # not a hash, or gone
            continue
        rows.append([_number_or(idle, -1), pttl, _number_or(size, -1), length, meta])
    return rows


def session_infos(
    handles: list[str], keys: list[str], rows: list[Any], serializer: Serializer
) -> list[SessionInfo]:
    """`SessionInfo` of each handle (with its key) whose DESCRIBE row shows a session."""
    infos: list[SessionInfo] = []
    for handle, key, row in zip(handles, keys, rows):
        if not isinstance(row, list):
            continue  # gone meanwhile, or not a hash
        idle, pttl, size, length, meta = row
        if pttl == -2 or not isinstance(meta, list):
            continue
        infos.append(
            SessionInfo(
                handle=handle,
                key=key,
                ttl_ms=pttl,
                created_ms=_int_or_none(meta[0]),
                user=_user(meta[1], serializer),
                size=size if size >= 0 else None,
                idle_s=idle if idle >= 0 else None,
                fields=length,
            )
        )
    return infos


def _user(raw: Any, serializer: Serializer) -> str | None:
    # The user field as text: a dict shows its name, id or email.
    if not isinstance(raw, bytes):
        return None
    try:
        value = serializer.loads(raw)
    except ValueError:
        return None
    if isinstance(value, dict):
        value = value.get("name") or value.get("id") or value.get("email") or value
    return None if value is None else str(value)


def _number_or(reply: Any, default: int) -> int:
    """An integer reply, or `default` for an error (a refused command) or nil."""
    return reply if isinstance(reply, int) else default


def _int_or_none(raw: Any) -> int | None:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None
