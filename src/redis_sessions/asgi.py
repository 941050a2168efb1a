"""Pure ASGI session middleware: a drop-in for Starlette's `SessionMiddleware`.

`scope["session"]` holds a `Session`, so ``request.session`` works unchanged in Starlette and
FastAPI. The session is loaded (one round trip) only when the request carries a validly signed
cookie, and written on ``http.response.start`` (or ``websocket.accept``), where the
``Set-Cookie`` header is added.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ._adapter import AsyncDriver, replaces_answer, unavailable_body, unavailable_headers
from ._config import SessionConfig
from ._engine import SessionEngine
from ._errors import SessionLockError, StoreUnavailableError
from ._rules import is_secure_request
from ._session import Session
from ._stores import AsyncStore

__all__ = ["ASGIApp", "Message", "Receive", "Scope", "Send", "SessionMiddleware", "get_session"]

# The ASGI callables, typed as Starlette types them (starlette/types.py).
Scope = MutableMapping[str, Any]
"""An ASGI connection scope."""
Message = MutableMapping[str, Any]
"""An ASGI event (received or sent)."""
Receive = Callable[[], Awaitable[Message]]
"""The ASGI ``receive`` callable."""
Send = Callable[[Message], Awaitable[None]]
"""The ASGI ``send`` callable."""
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
"""An ASGI application."""
# What the middleware wraps: any ASGI callable, whichever framework's types it has (Falcon's
# App takes a dict scope; uvicorn's middlewares take TypedDict events), as Starlette types it.
_WrappedApp = Callable[[Any, Any, Any], Awaitable[None]]


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
        **options: `SessionConfig` / `CookieConfig` fields, flat (``secret=``,
            ``same_site=``...); Starlette's ``secret_key``, ``session_cookie``, ``max_age`` and
            ``https_only`` are accepted too.

    With the ``lock`` option (True, path prefixes or a predicate on the path), matching
    requests take the session's lock with the read and free it with the save (see
    `SessionConfig.lock`); a request that cannot get it within ``lock_timeout`` answers 503.
    """

    # ``app`` is positional-only so that the class matches Starlette's middleware factory
    # protocol (``add_middleware(SessionMiddleware, ...)`` type-checks): with ``**options`` a
    # keyword ``app=`` could otherwise collide.
    def __init__(
        self,
        app: _WrappedApp,
        /,
        store: AsyncStore | None = None,
        *,
        config: SessionConfig | None = None,
        lazy: bool = False,
        **options: Any,
    ) -> None:
        if store is None:
            from .store._async import AsyncRedisStore

            store = AsyncRedisStore()
        self.app = app
        self.lazy = lazy
        self.store = store
        self.config = SessionConfig.from_options(config, options)
        self.engine = SessionEngine(
            self.config, serializer=store.serializer, max_size=store.max_size
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        cookie, proto = None, None
        for name, value in scope.get("headers", ()):
            if name == b"cookie":
                text = value.decode("latin-1")
                cookie = text if cookie is None else f"{cookie}; {text}"
            elif name == b"x-forwarded-proto":
                proto = value.decode("latin-1")
        secure = is_secure_request(
            scope.get("scheme", "http"), proto, trust_proxy=self.config.trust_proxy
        )
        cycle = self.engine.begin(cookie, secure=secure, path=scope.get("path", ""))
        driver = AsyncDriver(self.store, cycle)
        if self.lazy and cycle.load is not None:
            driver.load_lazily()  # loads on Session.aload() only
        else:
            try:
                await driver.load()
            except StoreUnavailableError as exc:
                await self._unavailable(kind, send, exc)
                return
        await self._serve(scope, receive, send, driver)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, driver: AsyncDriver) -> None:
        kind = scope["type"]
        cycle = driver.cycle
        scope["session"] = cycle.session
        started = replaced = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started, replaced
            if replaced:
                return  # the app's response was swapped for a 503
            if cycle.failure is not None and _is_error_answer(message):
                # The framework answered our store error with its own 5xx (or 1011 close).
                started = replaced = True
                await self._unavailable(kind, send, cycle.failure)
                return
            if message["type"] in ("http.response.start", "websocket.accept"):
                started = True
                try:
                    extra = await driver.commit()
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
            if cycle.failure is None or started:
                raise
            # The app turned our store error into another exception: still our 503; the
            # server logs the exception.
            await self._unavailable(kind, send, cycle.failure)
            raise
        finally:
            await driver.release()

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
