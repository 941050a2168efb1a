"""Litestar: server-side sessions through the ASGI `SessionMiddleware`, as one plugin.

    from litestar import Litestar
    from redis_sessions import AsyncRedisStore
    from redis_sessions.litestar import RedisSessions

    app = Litestar(route_handlers=[...], plugins=[RedisSessions(AsyncRedisStore(), secret=...)])

Litestar's own session API works unchanged: ``request.session`` is the `Session` (a mutable
mapping), ``request.set_session(data)`` replaces its contents and ``request.clear_session()``
destroys it (the stored copy is deleted and the cookie cleared). `redis_sessions.asgi.get_session`
gives the typed `Session` (``regenerate()``, ``destroy()``, ``asave()``...).

Do not also install Litestar's ``ServerSideSessionConfig`` / ``CookieBackendConfig``
middleware: both would own ``scope["session"]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from litestar import Request, Response
from litestar.config.app import AppConfig
from litestar.serialization import decode_json, encode_json
from litestar.types import ASGIApp, Empty
from litestar.utils import get_serializer_from_scope

from ._adapter import unavailable_body, unavailable_headers
from ._config import SessionConfig
from ._errors import StoreUnavailableError
from ._session import Session
from ._stores import AsyncStore
from .asgi import Message, Receive, Scope, Send, SessionMiddleware

__all__ = ["RedisSessions"]


class _LitestarApi:
    """Maps ``request.set_session()`` / ``clear_session()`` onto the `Session` before it is
    saved: both replace ``scope["session"]``, which the middleware does not look at again."""

    __slots__ = ("app",)

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        session: Session = scope["session"]  # set by the SessionMiddleware around us

        async def send_wrapper(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                current = scope.get("session")
                if current is not session:
                    scope["session"] = session
                    _apply(session, current, scope)
            await send(message)

        await self.app(scope, receive, send_wrapper)


def _apply(session: Session, current: object, scope: Scope) -> None:
    """Give `session` what the app put in ``scope["session"]``."""
    if current is Empty or current is None:
        session.destroy()  # request.clear_session(): Litestar deletes the stored session too
        return
    if not isinstance(current, Mapping):
        # A dataclass, msgspec Struct or pydantic model, converted as Litestar's own
        # session backends do.
        serializer = get_serializer_from_scope(cast(Any, scope))
        current = decode_json(encode_json(current, serializer))
        if not isinstance(current, Mapping):
            raise TypeError("request.set_session() needs a mapping or a data container")
    session.clear()  # request.set_session(data): the data replaces the session's contents
    session.update(current)


class RedisSessions:
    """Litestar plugin installing `redis_sessions.asgi.SessionMiddleware` on every route.

    It goes first in the app's middleware list (outermost), so other middleware (auth...) see
    the session. It also turns a `StoreUnavailableError` raised inside a handler (for example
    by ``await session.asave()``) into the same 503 with ``Retry-After`` that the middleware
    sends when Redis is down at load or save time.

    Args:
        store: an `AsyncRedisStore` (default: one on ``$REDIS_URL``, shared by every route).
        config: a `SessionConfig` to start from.
        **options: `SessionConfig` / `CookieConfig` fields, flat (``secret=``...), as for
            the middleware.
    """

    def __init__(
        self,
        store: AsyncStore | None = None,
        *,
        config: SessionConfig | None = None,
        **options: Any,
    ) -> None:
        from .store._async import AsyncRedisStore

        # Built once: Litestar instantiates middleware per route, and every route must share
        # one store (one connection pool) and one validated config.
        self.store = store if store is not None else AsyncRedisStore()
        self.config = SessionConfig.from_options(config, options)

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        """Litestar's init hook: add the middleware and the 503 exception handler."""
        app_config.middleware.insert(0, self.middleware)
        app_config.exception_handlers.setdefault(StoreUnavailableError, self._unavailable)
        return app_config

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Middleware factory (Litestar calls it once per route handler)."""
        return cast(ASGIApp, SessionMiddleware(_LitestarApi(app), self.store, config=self.config))

    def _unavailable(self, request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
        headers = {
            k: v
            for k, v in unavailable_headers(self.config.retry_after)
            if k not in ("content-type", "content-length")
        }
        return Response(
            unavailable_body(exc),
            status_code=503,
            headers=headers,
            media_type="text/plain; charset=utf-8",
        )
