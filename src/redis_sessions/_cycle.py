"""`RequestCycle`: one request's session state, driven by a few verbs, with no I/O.

h11's `Connection` is the model: the object holds the state of one exchange and says what to
do next; the adapter performs the I/O and hands back what came of it. Every adapter (and the
drivers in `_adapter.py` that most of them use) runs the same sequence::

    cycle = engine.begin(cookie_header, secure=secure, path=path)
    reply = store.load(cycle.load) if cycle.load is not None else None  # on error: degrade
    session = cycle.open(reply)
    ...                                                  # the app reads and writes session
    plan = cycle.plan(now_ms())
    headers = cycle.finish(plan, store.commit(plan))     # Set-Cookie, Vary, Cache-Control
"""

from __future__ import annotations

import dataclasses
import secrets

from ._engine import SessionEngine
from ._errors import StoreUnavailableError, degrades
from ._plans import Committed, Incoming, Load, Loaded, LockHold, Plan, Release, Write
from ._session import Session

__all__ = ["RequestCycle"]


class RequestCycle:
    """One request's session, from its cookie to its response headers.

    Made by `SessionEngine.begin`. Attributes an adapter reads:

    Attributes:
        incoming: what the request's cookie says.
        load: what to read before the app runs (None: no verified cookie, nothing to read).
        session: the request's `Session`, empty until `open`.
        secure: the request came over HTTPS (the cookie's ``Secure`` with ``secure="auto"``).
        lock: ``(handle, token)`` of the session's lock this request holds, or None.
        degraded: the load failed and ``on_unavailable="anonymous"`` serves the request with
            an anonymous session that is never saved.
        failure: a load or save of this request failed: a 5xx the app then answers (its
            framework caught our error) is replaced by the 503.
        engine: the `SessionEngine` deciding (an adapter may swap in another one with other
            cookie settings before `plan`, as Flask's per-session permanence does).
    """

    __slots__ = (
        "degraded",
        "engine",
        "failure",
        "incoming",
        "load",
        "lock",
        "secure",
        "session",
        "started_ms",
    )

    def __init__(
        self,
        engine: SessionEngine,
        incoming: Incoming,
        load: Load | None,
        secure: bool,
        session: Session,
        started_ms: int,
    ) -> None:
        self.engine = engine
        self.incoming = incoming
        self.load = load
        self.secure = secure
        self.session = session
        self.started_ms = started_ms
        self.lock: tuple[str, str] | None = None
        self.degraded = False
        self.failure: StoreUnavailableError | None = None

    def open(self, reply: Loaded | None) -> Session:
        """Fill the session from the store's reply to `load` (None: nothing stored or read)."""
        incoming = self.incoming
        if reply is not None and reply.lock is not None and incoming.handle is not None:
            self.lock = (incoming.handle, reply.lock)
        self.engine.fill(self.session, incoming, reply, self.started_ms)
        return self.session

    def degrade(self, error: StoreUnavailableError) -> bool:
        """A load failed: True when the request goes on with an anonymous session
        (``on_unavailable="anonymous"``, and not a lock error), else False (answer 503; the
        error is kept in `failure`). Call `open(None)` after True."""
        if degrades(error, self.engine.config.on_unavailable):
            self.degraded = True
            return True
        self.failure = error
        return False

    def plan(self, now_ms: int, *, final: bool = True) -> Plan:
        """What to write now: at the end of the request (`final`: it frees the session's lock
        if this request holds it), or for a save in the middle of it, which keeps the lock.
        None when degraded (an anonymous session is never saved). Raises
        `SessionTooLargeError` (nothing is written) when the session is over ``max_size``."""
        if self.degraded:
            return None
        plan = self.engine.plan(self.session, now_ms)
        lock = self.lock
        if lock is None:
            return plan
        if plan is None:
            return self.release() if final else None
        assert not isinstance(plan, Release)  # only made by `release`
        target = plan.regenerated_from if isinstance(plan, Write) else None
        if (target or plan.handle) != lock[0]:
            return plan  # a new session (the stored one was unreadable): released at the end
        hold = LockHold(lock[1], release=final)
        return dataclasses.replace(plan, hold=hold, nonce=secrets.token_hex(8))

    def finish(self, plan: Plan, result: Committed) -> list[tuple[str, str]]:
        """Record what the store did with `plan`; the headers to add to the response."""
        hold = getattr(plan, "hold", None)
        if isinstance(plan, Release) or (hold is not None and hold.release):
            self.lock = None
        self.engine.committed(self.session, plan, result)
        if self.degraded:
            return []
        return self.engine.response_headers(self.session, self.incoming, plan, result, self.secure)

    def release(self) -> Release | None:
        """The plan freeing the session's lock, if this request still holds it (the app
        raised, or never answered); run it, then call `released`."""
        lock = self.lock
        if lock is None:
            return None
        return Release(handle=lock[0], token=lock[1], nonce=secrets.token_hex(8))

    def released(self) -> None:
        """The lock is no longer this request's (freed, or left to its TTL)."""
        self.lock = None

    def reload(self, now_ms: int) -> Load | None:
        """What to read to re-read the session's stored copy (`Session.reload`), or None when
        it has none; pass the reply to `reopen`. The lock, if held, stays held."""
        return self.engine.load_spec(self._stored(), now_ms)

    def reopen(self, reply: Loaded | None, now_ms: int) -> None:
        """Refill the session from the reply to `reload`, dropping its unsaved changes."""
        self.engine.fill(self.session, self._stored(), reply, now_ms)

    def _stored(self) -> Incoming:
        session = self.session
        if session._handle is None:
            return Incoming()
        return Incoming(session._id, session._handle, True, False)
