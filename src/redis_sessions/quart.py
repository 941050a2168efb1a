"""Quart: ``quart.session`` backed by Redis, in one line.

    from quart import Quart, session
    from redis_sessions import AsyncRedisStore
    from redis_sessions.quart import RedisSessions

    app = Quart(__name__)
    RedisSessions(app, AsyncRedisStore(), secret=...)

The I/O is done by the ASGI `redis_sessions.asgi.SessionMiddleware`, which wraps
``app.asgi_app`` (Quart's documented place for ASGI middleware): it loads the session before
Quart runs, saves it when the response starts, and answers 503 with ``Retry-After`` when Redis
is down. The installed `RedisSessionInterface` only hands that session to Quart, so
``quart.session`` works unchanged, including ``session.modified``, ``session.new`` and
``session.permanent``, plus `regenerate()` / `destroy()` for login and logout.

As in Quart's own cookie sessions (and Flask-Session), a session the app empties
(``session.clear()``) is deleted: the default here is ``unset="destroy"``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

from quart import Quart, Response
from quart.sessions import SessionInterface, SessionMixin
from quart.wrappers import BaseRequestWebsocket
from werkzeug.wrappers import Response as WerkzeugResponse

from ._adapter import AsyncDriver, unavailable_body, unavailable_headers
from ._config import SessionConfig
from ._errors import StoreUnavailableError
from ._rules import is_secure_request
from ._session import Session
from ._stores import AsyncStore
from .asgi import ASGIApp, SessionMiddleware

__all__ = ["QuartSession", "RedisSessionInterface", "RedisSessions", "get_session"]


def get_session() -> QuartSession:
    """``quart.session``, typed: Quart annotates it as `SessionMixin`, which has no
    `regenerate` or `destroy` for a type checker."""
    from quart import session

    current = session._get_current_object()  # type: ignore[attr-defined]
    if not isinstance(current, QuartSession):
        raise LookupError("no Redis session: is redis_sessions.quart.RedisSessions installed?")
    return current


class QuartSession(SessionMixin):
    """What ``quart.session`` is: Quart's `SessionMixin` over the request's `Session`.

    Mapping operations, `regenerate`, `destroy`, `touch`, `mark_modified`, `asave` and
    `areload` go to the `Session` (also available as `.session`).
    """

    def __init__(
        self, session: Session, config: SessionConfig, driver: AsyncDriver | None = None
    ) -> None:
        self.session = session
        self._config = config
        self._driver = driver  # set when opened outside the middleware (test contexts)
        self.new = session.is_new

    # -- mapping ----------------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        return self.session[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.session[key] = value

    def __delitem__(self, key: str) -> None:
        del self.session[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.session)

    def __len__(self) -> int:
        return len(self.session)

    def __contains__(self, key: object) -> bool:
        return key in self.session

    def __repr__(self) -> str:
        return f"<QuartSession {self.session!r}>"

    # -- Flask/Quart session attributes -----------------------------------------------------

    @property
    def modified(self) -> bool:
        """True when keys were set or deleted; setting it True forces a full write (Flask's
        idiom after changing a nested value, which is also detected without it)."""
        return self.session.is_modified

    @modified.setter
    def modified(self, value: bool) -> None:
        if value:
            self.session.mark_modified()

    @property
    def permanent(self) -> bool:
        """Whether the cookie outlives the browser session: the ``persist`` option (default
        True). It is one setting for all sessions, so only that value can be assigned."""
        return self._config.cookie.persist

    @permanent.setter
    def permanent(self, value: bool) -> None:
        if bool(value) != self._config.cookie.persist:
            raise ValueError(
                f"session.permanent = {bool(value)}: cookie persistence is one setting for "
                f"every session here; pass persist={bool(value)} to RedisSessions(...)"
            )

    # -- the Session's own API --------------------------------------------------------------

    @property
    def id(self) -> str:
        """The session id."""
        return self.session.id

    def regenerate(self) -> None:
        """New id, same data, old id deleted: call it on login."""
        self.session.regenerate()

    def destroy(self) -> None:
        """Delete the session and clear the cookie: call it on logout."""
        self.session.destroy()

    def touch(self) -> None:
        """Refresh the expiry (and re-send the cookie) even if nothing changed."""
        self.session.touch()

    def mark_modified(self, key: str | None = None) -> None:
        """Force `key` (or everything) to be written."""
        self.session.mark_modified(key)

    async def asave(self) -> None:
        """Write the session now, mid-request."""
        await self.session.asave()

    async def areload(self) -> None:
        """Re-read the session from the store, dropping unsaved changes."""
        await self.session.areload()


class RedisSessionInterface(SessionInterface):
    """Quart `SessionInterface` handing Quart the session the middleware loaded.

    Saving is the middleware's job (on ``http.response.start``), so `save_session` does
    nothing for those. Contexts that bypass ASGI (``app.test_request_context()``, the test
    client's ``session_transaction()``) get a session loaded and saved here, the same way.
    """

    def __init__(self, middleware: SessionMiddleware) -> None:
        self.middleware = middleware

    async def open_session(self, app: Quart, request: BaseRequestWebsocket) -> QuartSession:
        """The request's session (loaded by the middleware, or here outside ASGI)."""
        config = self.middleware.config
        session = request.scope.get("session")
        if isinstance(session, Session):
            return QuartSession(session, config)
        # Quart's test client sends one Cookie header per cookie: read them all.
        cookies = request.headers.getlist("cookie")
        secure = is_secure_request(
            request.scheme, request.headers.get("x-forwarded-proto"), trust_proxy=config.trust_proxy
        )
        cycle = self.middleware.engine.begin("; ".join(cookies) if cookies else None, secure=secure)
        driver = AsyncDriver(self.middleware.store, cycle)
        return QuartSession(await driver.load(), config, driver)

    async def save_session(
        self, app: Quart, session: SessionMixin, response: Response | WerkzeugResponse | None
    ) -> None:
        """Save a session opened outside the middleware; the middleware saves the others."""
        driver = session._driver if isinstance(session, QuartSession) else None
        if driver is None:
            return
        for name, value in await driver.commit():
            if response is not None:
                response.headers.add(name, value)


class RedisSessions:
    """Quart extension: ``RedisSessions(app, store, secret=...)`` or ``init_app(app)`` later.

    Args:
        app: the Quart app (or None, then call `init_app`).
        store: an `AsyncRedisStore` (default: one on ``$REDIS_URL``).
        config: a `SessionConfig` to start from.
        **options: `SessionConfig` / `CookieConfig` fields, flat (``secret=``...). Without
            ``secret``, the app's ``secret_key`` signs the cookie. ``unset`` defaults to
            ``"destroy"`` (an emptied session is deleted, as in Quart).
    """

    def __init__(
        self,
        app: Quart | None = None,
        store: AsyncStore | None = None,
        *,
        config: SessionConfig | None = None,
        **options: Any,
    ) -> None:
        from .store._async import AsyncRedisStore

        self.store = store if store is not None else AsyncRedisStore()
        self._base = config
        self._options = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Quart) -> None:
        """Wrap ``app.asgi_app`` with the middleware and install the session interface.

        Raises `ConfigError` when an option is invalid or there is no secret.
        """
        options = dict(self._options)
        if self._base is None:
            options.setdefault("unset", "destroy")
            if "secret" not in options and "secret_key" not in options and app.secret_key:
                options["secret"] = app.secret_key
        self.config = SessionConfig.from_options(self._base, options)
        # Quart types its ASGI callable with its own TypedDict scopes and events.
        inner = cast(ASGIApp, app.asgi_app)
        middleware = SessionMiddleware(inner, self.store, config=self.config)
        # Quart's documented way to add ASGI middleware; its annotations expect the method.
        app.asgi_app = middleware  # type: ignore[method-assign,assignment]
        # Quart annotates the class attribute with its default class, not SessionInterface.
        app.session_interface = RedisSessionInterface(middleware)  # type: ignore[assignment]
        app.register_error_handler(StoreUnavailableError, self._unavailable)

    async def _unavailable(self, error: StoreUnavailableError) -> Response:
        # Raised inside a view (e.g. by `await session.asave()`): the same 503 as the
        # middleware's, instead of Quart's 500.
        headers = {
            k: v for k, v in unavailable_headers(self.config.retry_after) if k != "content-length"
        }
        return Response(unavailable_body(error), status=503, headers=headers)
