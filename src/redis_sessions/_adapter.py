"""What the ASGI and WSGI adapters share: per-request state and the 503 answer."""

from __future__ import annotations

from dataclasses import dataclass

from ._engine import Incoming, Plan, SessionEngine
from ._session import Session

__all__ = ["RequestState", "unavailable_headers"]

UNAVAILABLE_BODY = b"Session store unavailable, please retry shortly.\n"


def unavailable_headers(retry_after: int) -> list[tuple[str, str]]:
    """Headers of the 503 sent when Redis cannot serve (no host names, no traceback)."""
    return [
        ("content-type", "text/plain; charset=utf-8"),
        ("content-length", str(len(UNAVAILABLE_BODY))),
        ("retry-after", str(retry_after)),
        ("cache-control", "no-store"),
    ]


@dataclass(slots=True)
class RequestState:
    """One request's session bookkeeping, shared by the sync and asyncio adapters."""

    engine: SessionEngine
    incoming: Incoming
    session: Session
    secure: bool
    degraded: bool = False  # Redis was down at load and on_unavailable="anonymous"

    def plan(self, now_ms: int) -> Plan:
        """What to write now (None when degraded: an anonymous session is never saved)."""
        return None if self.degraded else self.engine.plan(self.session, now_ms)

    def finish(self, plan: Plan, applied: bool) -> list[tuple[str, str]]:
        """Record the write and return the headers to add to the response."""
        self.engine.committed(self.session, plan, applied)
        if self.degraded:
            return []
        return self.engine.response_headers(self.session, self.incoming, plan, applied,
                                            self.secure)

    def reload_incoming(self) -> Incoming:
        """The `Incoming` that reloads the session's current stored copy."""
        session = self.session
        if session._handle is None:
            return Incoming()
        return Incoming(session._id, session._handle, True, False)
