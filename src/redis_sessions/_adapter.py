"""What the ASGI and WSGI adapters share: per-request state and the 503 answer."""

from __future__ import annotations

from dataclasses import dataclass

from ._engine import SessionEngine
from ._errors import SessionLockError, StoreUnavailableError
from ._plans import Committed, Incoming, Plan
from ._session import Session

__all__ = ["RequestState", "replaces_answer", "unavailable_body", "unavailable_headers"]

UNAVAILABLE_BODY = b"Session store unavailable, please retry shortly.\n"
FULL_BODY = b"Session store full, please retry later.\n"
LOCKED_BODY = b"Session busy: another request holds its lock, please retry shortly.\n"


def unavailable_body(error: BaseException | None) -> bytes:
    """The short body of the 503 for `error`: the lock, a full store, or unavailability."""
    if isinstance(error, SessionLockError):
        return LOCKED_BODY
    if isinstance(error, StoreUnavailableError) and error.reason == "OOM":
        return FULL_BODY
    return UNAVAILABLE_BODY


def unavailable_headers(retry_after: int, body: bytes = UNAVAILABLE_BODY) -> list[tuple[str, str]]:
    """Headers of the 503 sent when Redis cannot serve (no host names, no traceback)."""
    return [
        ("content-type", "text/plain; charset=utf-8"),
        ("content-length", str(len(body))),
        ("retry-after", str(retry_after)),
        ("cache-control", "no-store"),
    ]


def replaces_answer(status: int, has_retry_after: bool) -> bool:
    """Whether the app's answer (after this request's session failed on the store) gives way
    to our 503: any 5xx (a framework's 500 page for our error) except a 503 that already
    carries ``Retry-After`` (a handler's own answer to it)."""
    return status >= 500 and not (status == 503 and has_retry_after)


@dataclass(slots=True)
class RequestState:
    """One request's session bookkeeping, shared by the sync and asyncio adapters."""

    engine: SessionEngine
    incoming: Incoming
    session: Session
    secure: bool
    degraded: bool = False  # Redis was down at load and on_unavailable="anonymous"
    # A load or save of this request failed inside the app: a 5xx it then answers (the
    # framework caught our error) becomes our 503.
    failure: StoreUnavailableError | None = None

    def plan(self, now_ms: int, *, final: bool = True) -> Plan:
        """What to write now (None when degraded: an anonymous session is never saved);
        `final` at the end of the request (it releases the session's lock, if held)."""
        if self.degraded:
            return None
        return self.engine.plan(self.session, now_ms, final=final)

    def release_plan(self) -> Plan:
        """The plan freeing a lock still held after the request (the app raised, or the
        response never started), or None."""
        return self.engine.release(self.session)

    def finish(self, plan: Plan, result: Committed) -> list[tuple[str, str]]:
        """Record the write and return the headers to add to the response."""
        self.engine.committed(self.session, plan, result)
        if self.degraded:
            return []
        return self.engine.response_headers(self.session, self.incoming, plan, result, self.secure)

    def reload_incoming(self) -> Incoming:
        """The `Incoming` that reloads the session's current stored copy."""
        session = self.session
        if session._handle is None:
            return Incoming()
        return Incoming(session._id, session._handle, True, False)
