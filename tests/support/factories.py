"""Values the tests build again and again."""

from __future__ import annotations

from redis_sessions import SessionInfo


def session_info(**fields: object) -> SessionInfo:
    """A `SessionInfo` as a listing returns it, with `fields` replacing the defaults."""
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
    return SessionInfo(**{**base, **fields})  # type: ignore[arg-type]  # tests pass what they need
