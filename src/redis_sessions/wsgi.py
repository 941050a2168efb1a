"""WSGI session middleware: the session is loaded lazily, on first access.

The session is at ``environ["redis_sessions.session"]`` (or `get_session(environ)`). A request
that never touches it costs no Redis round trip, even with a cookie. It is written when the app
calls ``start_response``, where the ``Set-Cookie`` header is added.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ._adapter import UNAVAILABLE_BODY, RequestState, unavailable_headers
from ._config import SessionConfig
from ._engine import Incoming, Load, SessionEngine, is_secure_request
from ._errors import SessionStateError, StoreUnavailableError
from ._session import Session
from .store._base import now_ms

__all__ = ["ENVIRON_KEY", "SessionMiddleware", "get_session"]

ENVIRON_KEY = "redis_sessions.session"

WSGIEnviron = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[WSGIEnviron, StartResponse], Iterable[bytes]]


def get_session(environ: WSGIEnviron) -> Session:
    """The session of a request handled by `SessionMiddleware`."""
    try:
        return environ[ENVIRON_KEY]  # type: ignore[no-any-return]
    except KeyError:
        raise LookupError(
            "no session: is redis_sessions.wsgi.SessionMiddleware installed?"
        ) from None


class _Binding:
    """Gives `Session.save()` / `reload()` and the lazy load access to the store."""

    __slots__ = ("middleware", "spec", "state")

    def __init__(self, middleware: SessionMiddleware, state: RequestState, spec: Load | None):
        self.middleware = middleware
        self.state = state
        self.spec = spec

    def load(self, session: Session) -> None:
        state, spec = self.state, self.spec
        assert spec is not None  # the loader is only installed with a spec
        try:
            reply = self.middleware.store.load(spec)
        except StoreUnavailableError:
            if self.middleware.config.on_unavailable != "anonymous":
                raise
            state.degraded, reply = True, None
        state.engine.fill(session, state.incoming, reply, spec.now_ms)

    def save(self, session: Session) -> None:
        session._ensure()
        self.middleware._commit(self.state)

    def reload(self, session: Session) -> None:
        state = self.state
        session._loader = None
        incoming = state.reload_incoming()
        now = now_ms()
        spec = state.engine.load_spec(incoming, now)
        reply = self.middleware.store.load(spec) if spec else None
        state.engine.fill(session, incoming, reply, now)

    async def asave(self, session: Session) -> None:
        raise SessionStateError("use 'session.save()' under WSGI")

    async def areload(self, session: Session) -> None:
        raise SessionStateError("use 'session.reload()' under WSGI")


class SessionMiddleware:
    """Server-side sessions for any WSGI app.

    Args:
        app: the WSGI app.
        store: a `RedisStore` or `MemoryStore` (default: `RedisStore` on ``$REDIS_URL``).
        config: a `SessionConfig` to start from.
        **options: `SessionConfig` / `CookieConfig` fields, flat (``secret=``...).
    """

    def __init__(self, app: WSGIApp, store: Any = None, *, config: SessionConfig | None = None,
                 **options: Any) -> None:
        from .store._sync import RedisStore

        self.app = app
        self.store = store if store is not None else RedisStore()
        self.config = SessionConfig.from_options(config, options)
        self.engine = SessionEngine(self.config, serializer=self.store.serializer,
                                    max_size=self.store.max_size)

    def __call__(self, environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
        engine, config = self.engine, self.config
        incoming: Incoming = engine.read_cookie(environ.get("HTTP_COOKIE"))
        now = now_ms()
        spec = engine.load_spec(incoming, now)
        session = engine.new_session(now)
        secure = is_secure_request(environ.get("wsgi.url_scheme", "http"),
                                   environ.get("HTTP_X_FORWARDED_PROTO"),
                                   trust_proxy=config.trust_proxy)
        state = RequestState(engine, incoming, session, secure)
        binding = _Binding(self, state, spec)
        session._binding = binding
        if spec is not None:
            session._loader = binding.load
        environ[ENVIRON_KEY] = session
        failed = False

        def wrapped_start_response(status: str, headers: list[tuple[str, str]],
                                   exc_info: Any = None) -> Any:
            nonlocal failed
            try:
                extra = self._commit(state)
            except StoreUnavailableError:
                failed = True
                return self._unavailable(start_response, exc_info)
            return start_response(status, [*headers, *((k.title(), v) for k, v in extra)], exc_info)

        try:
            body = self.app(environ, wrapped_start_response)
        except StoreUnavailableError:
            self._unavailable(start_response, None)
            return [UNAVAILABLE_BODY]
        if failed:
            close = getattr(body, "close", None)
            if close is not None:
                close()
            return [UNAVAILABLE_BODY]
        return body

    def _commit(self, state: RequestState) -> list[tuple[str, str]]:
        plan = state.plan(now_ms())
        applied = self.store.commit(plan) if plan is not None else True
        return state.finish(plan, applied)

    def _unavailable(self, start_response: StartResponse, exc_info: Any) -> Any:
        headers = [(k.title(), v) for k, v in unavailable_headers(self.config.retry_after)]
        return start_response("503 Service Unavailable", headers, exc_info)
