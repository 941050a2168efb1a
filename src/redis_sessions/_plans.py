"""The values that pass between the engine and a store: what to read, what was read, what to
write, and what the write did.

The engine makes `Load` and the plans (`Write`, `Touch`, `Destroy`, `Release`); a store runs
them and answers with `Loaded` and `Committed`. They are frozen and keyword-only: a store
never changes a plan, it returns what happened.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "DONE",
    "Committed",
    "Destroy",
    "Incoming",
    "Load",
    "Loaded",
    "LockHold",
    "Plan",
    "Release",
    "Touch",
    "Write",
]


@dataclass(frozen=True, slots=True)
class Incoming:
    """What the request's cookie says.

    Attributes:
        session_id: the verified id, or None (no cookie, malformed or bad signature).
        handle: the storage handle of `session_id` (SHA-256 of it), or None.
        cookie_present: a cookie with our name was sent, valid or not.
        resign: it verified with an older secret and must be re-signed with the first.
        value: the verified cookie value as sent (re-sent as is instead of signing again).
    """

    session_id: str | None = None
    handle: str | None = None
    cookie_present: bool = False
    resign: bool = False
    value: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Load:
    """Read a stored session and, in the same command, refresh its TTL when due.

    The store refreshes the TTL to ``min(idle_ms, created + lifetime_ms - now_ms)`` when that
    is at least `touch_after_ms` more than what is left, and deletes a session whose absolute
    lifetime is over. ``lifetime_ms`` 0 means no absolute lifetime.

    With `lock` (a random token), the store first takes the session's lock (``SET NX PX
    lock_ttl_ms``, in the same command as the read), waiting up to `lock_wait_ms` for another
    holder; it raises `SessionLockError` when the wait is over, or at once (no Redis call)
    when `lock_waiters` requests of this process wait for that session's lock already (0: no
    bound).
    """

    handle: str
    now_ms: int
    idle_ms: int = 0
    lifetime_ms: int = 0
    touch_after_ms: int = 0
    lock: str | None = None
    lock_ttl_ms: int = 0
    lock_wait_ms: int = 0
    lock_waiters: int = 0

    @classmethod
    def read_only(cls, handle: str, now_ms: int) -> Load:
        """A plain read: no refresh, no lifetime check, no lock (Django's own expiry rules)."""
        return cls(handle=handle, now_ms=now_ms)


@dataclass(frozen=True, slots=True, kw_only=True)
class Loaded:
    """The store's reply to a `Load`: the hash fields and the key's PTTL after any refresh.

    `foreign` is True when the key holds another Redis type (never written by us).
    `refresh_ms` is the TTL to set at the end of the request when a refresh is due (0: none).
    `lock` is the token of the lock taken for this request, if any.
    """

    pttl_ms: int
    fields: Mapping[bytes, bytes]
    foreign: bool = False
    refresh_ms: int = 0
    lock: str | None = None


@dataclass(frozen=True, slots=True)
class LockHold:
    """The session's lock held by this request: a plan carrying it applies only while the
    lock is still this request's (`token`), and frees it when `release` (the final save)."""

    token: str
    release: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Write:
    """Set `fields`, delete `delete` and set the TTL, atomically, in one round trip.

    With `create` False the write applies only if the key still exists (no resurrection after
    a concurrent logout). With `regenerated_from`, the session at that handle is deleted in
    the same step (regenerate), and the write applies only if that handle still exists.
    `ttl_ms` 0 means no expiry.

    `incr` adds integers to fields in Redis (``HINCRBY``) and `setnx` sets fields only where
    they are absent (``HSETNX``); the store answers the resulting stored values in
    `Committed.values`. `nonce` makes a write that is not idempotent (increments, a lock
    release) apply once when redis-py re-sends it after a lost reply.

    A `create` never writes into a key that exists (a custom `genid` may repeat an id): the
    store takes the first free of `handle` and the `spare` ``(id, handle)`` pairs, in the same
    command, and answers the spare it took in `Committed.taken`; with every candidate taken it
    raises `SessionStateError` (with no spares it answers not applied).
    """

    handle: str
    fields: Mapping[str, bytes]
    delete: tuple[str, ...] = ()
    ttl_ms: int
    create: bool
    regenerated_from: str | None = None
    incr: tuple[tuple[str, int], ...] = ()
    setnx: tuple[tuple[str, bytes], ...] = ()
    nonce: str | None = None
    hold: LockHold | None = None
    spare: tuple[tuple[str, str], ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Touch:
    """Refresh the TTL of an existing session (no-op if it is gone).

    `best_effort`: the periodic refresh of a read (`touch_after`); the store ignores a server
    that cannot take it (down, paused for writes), since the read itself was served.
    """

    handle: str
    ttl_ms: int
    best_effort: bool = False
    hold: LockHold | None = None
    nonce: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Destroy:
    """Delete a stored session (with `hold`: only while holding it; the lock goes too)."""

    handle: str
    hold: LockHold | None = None
    nonce: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Release:
    """Free the session's lock held by this request (nothing else to write)."""

    handle: str
    token: str
    nonce: str


Plan = Write | Touch | Destroy | Release | None
"""What the engine asks a store to run at the end of (or during) a request; None: nothing."""


@dataclass(frozen=True, slots=True)
class Committed:
    """What a store did with a plan.

    Attributes:
        applied: False when the session was gone meanwhile (a logout elsewhere): nothing was
            written, and nothing will be under any id for the rest of the request.
        values: the stored bytes of the fields of a `Write`'s `incr` and `setnx` after it ran
            (other requests' changes included).
        taken: the spare ``(id, handle)`` a create was stored under (its own id was in use).
    """

    applied: bool
    values: Mapping[str, bytes] = field(default_factory=lambda: _EMPTY)
    taken: tuple[str, str] | None = None


_EMPTY: Mapping[str, bytes] = MappingProxyType({})

DONE = Committed(True)  # nothing to run, or a plan that applied with nothing to report
