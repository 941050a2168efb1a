"""What the adapters share: the request's I/O (one driver per I/O model) and the 503 answer.

The drivers have the shape of httpx's sync and async auth-flow drivers: the decisions are
the `RequestCycle`'s, the drivers only run the store calls it asks for, in the same order.
"""

from __future__ import annotations

import contextlib

from ._cycle import RequestCycle
from ._engine import now_ms
from ._errors import SessionLockError, SessionStateError, StoreUnavailableError
from ._session import Session
from ._stores import AsyncStore, SyncStore

__all__ = [
    "AsyncDriver",
    "SyncDriver",
    "replaces_answer",
    "unavailable_body",
    "unavailable_headers",
]

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


class AsyncDriver:
    """One request's session I/O over an asyncio store: load (or degrade), commit, release
    and reload, written once for every asyncio adapter. It is also the session's binding:
    ``await session.asave()`` / ``areload()`` come here."""

    __slots__ = ("cycle", "store")

    def __init__(self, store: AsyncStore, cycle: RequestCycle) -> None:
        self.store = store
        self.cycle = cycle
        cycle.session._binding = self

    async def load(self) -> Session:
        """Read and open the session. Raises `StoreUnavailableError` unless the cycle
        degrades (``on_unavailable="anonymous"``): the request is then answered 503."""
        cycle = self.cycle
        reply = None
        if cycle.load is not None:
            try:
                reply = await self.store.load(cycle.load)
            except StoreUnavailableError as exc:
                if not cycle.degrade(exc):
                    raise
        return cycle.open(reply)

    def load_lazily(self) -> None:
        """Make the session load on ``await session.aload()`` instead of now."""

        async def load(session: Session) -> None:
            await self.load()

        self.cycle.session._set_async_loader(load)

    async def commit(self, *, final: bool = True) -> list[tuple[str, str]]:
        """Write what the request changed; the headers to add to the response."""
        cycle = self.cycle
        plan = cycle.plan(now_ms(), final=final)
        return cycle.finish(plan, await self.store.commit(plan))

    async def release(self) -> None:
        """Free the session's lock if the request still holds it (the app raised, or never
        answered), rather than make the next request of this session wait for its TTL."""
        plan = self.cycle.release()
        if plan is None:
            return
        with contextlib.suppress(StoreUnavailableError):  # else the lock's TTL frees it
            await self.store.commit(plan)
        self.cycle.released()

    # -- the session's binding ---------------------------------------------------------------

    def save(self, session: Session) -> None:
        raise SessionStateError("use 'await session.asave()' under ASGI")

    def reload(self, session: Session) -> None:
        raise SessionStateError("use 'await session.areload()' under ASGI")

    async def asave(self, session: Session) -> None:
        try:
            await self.commit(final=False)
        except StoreUnavailableError as exc:
            self.cycle.failure = exc
            raise

    async def areload(self, session: Session) -> None:
        session._aloader = session._loader = None  # a lazy session counts as loaded now
        cycle = self.cycle
        now = now_ms()
        spec = cycle.reload(now)
        try:
            reply = await self.store.load(spec) if spec is not None else None
        except StoreUnavailableError as exc:
            cycle.failure = exc
            raise
        cycle.reopen(reply, now)


class SyncDriver:
    """One request's session I/O over a blocking store: `AsyncDriver`'s twin for the WSGI
    adapters. It is also the session's binding: ``session.save()`` / ``reload()`` and the
    lazy load on first access come here."""

    __slots__ = ("cycle", "store")

    def __init__(self, store: SyncStore, cycle: RequestCycle) -> None:
        self.store = store
        self.cycle = cycle
        cycle.session._binding = self

    def load(self, session: Session | None = None) -> Session:
        """Read and open the session. Raises `StoreUnavailableError` unless the cycle
        degrades (``on_unavailable="anonymous"``)."""
        cycle = self.cycle
        reply = None
        if cycle.load is not None:
            try:
                reply = self.store.load(cycle.load)
            except StoreUnavailableError as exc:
                if not cycle.degrade(exc):
                    raise
        return cycle.open(reply)

    def load_lazily(self) -> None:
        """Make the session load on first access (no round trip for a request that never
        touches it)."""
        if self.cycle.load is not None:
            self.cycle.session._loader = self.load

    def commit(self, *, final: bool = True) -> list[tuple[str, str]]:
        """Write what the request changed; the headers to add to the response."""
        cycle = self.cycle
        plan = cycle.plan(now_ms(), final=final)
        return cycle.finish(plan, self.store.commit(plan))

    def release(self) -> None:
        """Free the session's lock if the request still holds it."""
        plan = self.cycle.release()
        if plan is None:
            return
        with contextlib.suppress(StoreUnavailableError):  # else the lock's TTL frees it
            self.store.commit(plan)
        self.cycle.released()

    # -- the session's binding ---------------------------------------------------------------

    def save(self, session: Session) -> None:
        session._ensure()
        try:
            self.commit(final=False)
        except StoreUnavailableError as exc:
            self.cycle.failure = exc
            raise

    def reload(self, session: Session) -> None:
        session._loader = None
        cycle = self.cycle
        now = now_ms()
        spec = cycle.reload(now)
        try:
            reply = self.store.load(spec) if spec is not None else None
        except StoreUnavailableError as exc:
            cycle.failure = exc
            raise
        cycle.reopen(reply, now)

    async def asave(self, session: Session) -> None:
        raise SessionStateError("use 'session.save()' under WSGI")

    async def areload(self, session: Session) -> None:
        raise SessionStateError("use 'session.reload()' under WSGI")
