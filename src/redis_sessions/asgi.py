"""Pure ASGI session middleware: a drop-in for Starlette's `SessionMiddleware`.

`scope["session"]` holds a `Session`, so ``request.session`` works unchanged in Starlette and
FastAPI. The session is loaded (one round trip) only when the request carries a validly signed
cookie, and written on ``http.response.start`` (or ``websocket.accept``), where the
``Set-Cookie`` header is added.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ._adapter import RequestState, replaces_answer, unavailable_body, unavailable_headers
from ._config import SessionConfig
from ._engine import Incoming, Load, Loaded, is_secure_request
from ._errors import SessionLockError, SessionStateError, StoreUnavailableError
from ._session import Session
from .store._base import now_ms

__all__ = ["SessionMiddleware", "get_session"]

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Any
Send = Any
ASGIApp = Any


def get_session(conn: Any) -> Session:
    """The typed `Session` of a request: ``get_session(request)`` or ``get_session(scope)``.

    Starlette types ``request.session`` as a plain dict; this gives type checkers the real type
    (with `regenerate`, `destroy`, `asave`, ...).
    """
    scope = conn if isinstance(conn, dict) else conn.scope
    session = scope.get("session")
    if not isinstance(session, Session):
        raise LookupError("no session: is redis_sessions.asgi.SessionMiddleware installed?")
    return session


class _Binding:
    """Gives `Session.asave()` / `areload()` access to the store for one request."""

    __slots__ = ("middleware", "state")

    def __init__(self, middleware: SessionMiddleware, state: RequestState) -> None:
        self.middleware = middleware
        self.state = state

    def save(self, session: Session) -> None:
        raise SessionStateError("use 'await session.asave()' under ASGI")

    def reload(self, session: Session) -> None:
        raise SessionStateError("use 'await session.areload()' under ASGI")

    async def asave(self, session: Session) -> None:
        try:
            await self.middleware._commit(self.state, final=False)
        except StoreUnavailableError as exc:
            self.state.failure = exc
            raise

    async def areload(self, session: Session) -> None:
        session._aloader = session._loader = None  # a lazy session counts as loaded now
        state = self.state
        incoming = state.reload_incoming()
        now = now_ms()
        spec = state.engine.load_spec(incoming, now)
        try:
            reply = await self.middleware.store.load(spec) if spec else None
        except StoreUnavailableError as exc:
            state.failure = exc
            raise
        state.engine.fill(session, incoming, reply, now)


def _is_error_answer(message: Message) -> bool:
    """An ``http.response.start`` with a 5xx (see `replaces_answer`), or a websocket closed
    with "internal error" (1011, or Falcon's 3500-3599 for a 5xx)."""
    kind = message["type"]
    if kind == "http.response.start":
        has_retry_after = any(
            name.lower() == b"retry-after" for name, _ in message.get("headers", ())
        )
        return replaces_answer(int(message["status"]), has_retry_after)
    if kind == "websocket.close":
        code = int(message.get("code", 1000))
        return code == 1011 or 3500 <= code <= 3599
    return False


class SessionMiddleware:
    """Server-side sessions for any ASGI app.

    Args:
        app: the ASGI app.
        store: an `AsyncRedisStore` or `AsyncMemoryStore` (default: `AsyncRedisStore` on
            ``$REDIS_URL``).
        config: a `SessionConfig` to start from.
        lazy: do not load at the start of the request; the session loads on
            ``await session.aload()`` (the FastAPI dependency does it), so routes that never
            use the session cost no round trip even with a cookie. Sync access to a session
            that was not loaded raises `SessionStateError`.

    With the ``lock`` option (True, path prefixes or a predicate on the path), matching
    requests take the session's lock with the read and free it with the save (see
    `SessionConfig.lock`); a request that cannot get it within ``lock_timeout`` answers 503.
        **options: `SessionConfig` / `CookieConfig` fields, flat (``secret=``,
            ``same_site=``...); Starlette's ``secret_key``, ``session_cookie``, ``max_age`` and
            ``https_only`` are accepted too.
    """

    def __init__(
        self,
        app: ASGIApp,
        store: Any = None,
        *,
        config: SessionConfig | None = None,
        lazy: bool = False,
        **options: Any,
    ) -> None:
        from ._engine import SessionEngine
        from .store._async import AsyncRedisStore

        self.app = app
        self.lazy = lazy
        self.store = store if store is not None else AsyncRedisStore()
        self.config = SessionConfig.from_options(config, options)
        self.engine = SessionEngine(
            self.config, serializer=self.store.serializer, max_size=self.store.max_size
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        engine, config = self.engine, self.config
        cookie, proto = None, None
        for name, value in scope.get("headers", ()):
            if name == b"cookie":
                text = value.decode("latin-1")
                cookie = text if cookie is None else f"{cookie}; {text}"
            elif name == b"x-forwarded-proto":
                proto = value.decode("latin-1")
        incoming = engine.read_cookie(cookie)
        now = now_ms()
        lock = bool(config.lock) and config.wants_lock(scope.get("path", ""))
        spec = engine.load_spec(incoming, now, lock=lock)
        reply: Loaded | None = None
        degraded = False
        if spec is not None and self.lazy:
            await self._lazy(scope, receive, send, incoming, spec, proto)
            return
        if spec is not None:
            try:
                reply = await self.store.load(spec)
            except StoreUnavailableError as exc:
                if config.on_unavailable != "anonymous" or isinstance(exc, SessionLockError):
                    await self._unavailable(kind, send, exc)
                    return
                degraded = True
        session = engine.open_session(incoming, reply, now)
        await self._serve(
            scope,
            receive,
            send,
            RequestState(engine, incoming, session, self._secure(scope, proto), degraded),
        )

    def _secure(self, scope: Scope, proto: str | None) -> bool:
        return is_secure_request(
            scope.get("scheme", "http"), proto, trust_proxy=self.config.trust_proxy
        )

    async def _lazy(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        incoming: Incoming,
        spec: Load,
        proto: str | None,
    ) -> None:
        """Serve with a session that loads on `Session.aload()` only."""
        engine = self.engine
        state = RequestState(
            engine, incoming, engine.new_session(spec.now_ms), self._secure(scope, proto)
        )

        async def load(session: Session) -> None:
            reply: Loaded | None = None
            try:
                reply = await self.store.load(spec)
            except StoreUnavailableError as exc:
                if self.config.on_unavailable != "anonymous" or isinstance(exc, SessionLockError):
                    state.failure = exc
                    raise
                state.degraded = True
            engine.fill(session, incoming, reply, spec.now_ms)

        state.session._set_async_loader(load)
        await self._serve(scope, receive, send, state)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, state: RequestState) -> None:
        kind = scope["type"]
        session = state.session
        session._binding = _Binding(self, state)
        scope["session"] = session
        started = replaced = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started, replaced
            if replaced:
                return  # the app's response was swapped for a 503
            if state.failure is not None and _is_error_answer(message):
                # The framework answered our store error with its own 5xx (or 1011 close).
                started = replaced = True
                await self._unavailable(kind, send, state.failure)
                return
            if message["type"] in ("http.response.start", "websocket.accept"):
                started = True
                try:
                    extra = await self._commit(state)
                except StoreUnavailableError as exc:
                    replaced = True
                    await self._unavailable(kind, send, exc)
                    return
                if extra:
                    headers = list(message.get("headers", ()))
                    headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in extra)
                    message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except StoreUnavailableError as exc:
            if replaced:
                return  # answered already (Starlette re-raises after its 500 page)
            if started:
                raise
            await self._unavailable(kind, send, exc)
        except Exception:
            if state.failure is None or started:
                raise
            # The app turned our store error into another exception: still our 503; the
            # server logs the exception.
            await self._unavailable(kind, send, state.failure)
            raise
        finally:
            if session._lock is not None:
                await self._release(state)

    async def _commit(self, state: RequestState, *, final: bool = True) -> list[tuple[str, str]]:
        session = state.session
        if session._loader is not None and session._lock is None:
            return []  # never loaded (lazy): nothing to write, no cookie to set
        plan = state.plan(now_ms(), final=final)
        result = await self.store.commit(plan)
        return state.finish(plan, result)

    async def _release(self, state: RequestState) -> None:
        # The app raised or never answered: free the lock now rather than make the next
        # request of this session wait for its TTL.
        with contextlib.suppress(StoreUnavailableError):  # else the lock's TTL frees it
            await self.store.commit(state.release_plan())
        state.session._lock = None

    async def _unavailable(self, kind: str, send: Send, error: BaseException) -> None:
        if kind == "websocket":
            # 1013 "Try Again Later"; before the handshake the server answers 403.
            reason = "session lock" if isinstance(error, SessionLockError) else "session store"
            await send({"type": "websocket.close", "code": 1013, "reason": reason})
            return
        body = unavailable_body(error)
        headers = [
            (k.encode(), v.encode()) for k, v in unavailable_headers(self.config.retry_after, body)
        ]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})
