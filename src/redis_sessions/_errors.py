"""The exception hierarchy: one root, each error carrying an HTTP status hint.

Normal outcomes (no cookie, bad signature, unknown id, corrupt payload) are values, not
exceptions; exceptions are for system faults (`StoreUnavailableError`) and developer errors
(`SessionTooLargeError`, `ConfigError`, `SessionStateError`).
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "RedisSessionsError",
    "SessionLockError",
    "SessionStateError",
    "SessionTooLargeError",
    "StoreUnavailableError",
    "degrades",
]


class RedisSessionsError(Exception):
    """Root of every error this package raises.

    `status_hint` is the HTTP status an adapter answers with when the error escapes the app.
    """

    status_hint: int = 500


class ConfigError(RedisSessionsError, ValueError):
    """An option has a value outside what it accepts; the message names the option."""


class SessionTooLargeError(RedisSessionsError):
    """The serialized session is bigger than `max_size`; nothing was written."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"session is {size} bytes serialized, over the max_size limit of {limit} bytes; "
            "nothing was written"
        )
        self.size = size
        self.limit = limit


class SessionStateError(RedisSessionsError, RuntimeError):
    """A session method was used where it cannot work (e.g. `save()` outside a request)."""


class StoreUnavailableError(RedisSessionsError):
    """Redis could not serve the request (down, timing out, loading, read-only, out of memory).

    Adapters answer `503 Service Unavailable` with `Retry-After`, or serve an empty unsaved
    session when configured with `on_unavailable="anonymous"`. `reason` is a short,
    host-free description safe to log (`"connection"`, `"timeout"`, `"OOM"`, ...).
    """

    status_hint = 503

    def __init__(self, reason: str) -> None:
        super().__init__(f"session store unavailable ({reason})")
        self.reason = reason


class SessionLockError(StoreUnavailableError):
    """The session's lock (``lock=`` option) could not be used: another request held it past
    ``lock_timeout`` (`reason` ``"lock timeout"``), or this request's lock expired (``lock_ttl``)
    before its save, which was refused so as not to overwrite a newer holder's changes
    (``"lock lost"``). Adapters answer 503 with Retry-After, naming the lock."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.args = (f"session lock: {reason}",)


def degrades(error: StoreUnavailableError, on_unavailable: str) -> bool:
    """Whether a failed load serves the request with an anonymous session instead of a 503:
    with ``on_unavailable="anonymous"``, except for a lock error (the session exists and is
    busy; an anonymous answer would look like a logout)."""
    return on_unavailable == "anonymous" and not isinstance(error, SessionLockError)
