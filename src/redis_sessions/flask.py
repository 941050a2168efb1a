"""Flask integration: ``flask.session`` kept in Redis, through Flask's own `SessionInterface`.

    from flask import Flask, session
    from redis_sessions.flask import RedisSessions

    app = Flask(__name__)
    app.secret_key = "a long random secret"   # signs the session id cookie (>= 16 bytes)
    RedisSessions(app)                         # or RedisSessions(store=...).init_app(app)

``flask.session`` keeps its API (``permanent``, ``modified``, ``new``, ``accessed``) and gains
ours: ``regenerate()``, ``destroy()``, ``save()``, ``reload()``, ``touch()``; `get_session()`
returns it typed as `FlaskSession`. The session is read from Redis on first access only, so a
view that never touches it costs no round trip, even with a cookie.

Flask settings are read when `RedisSessions.init_app` runs (configure the app first), unless
given as keyword options: ``SECRET_KEY`` plus ``SECRET_KEY_FALLBACKS``,
``PERMANENT_SESSION_LIFETIME`` (the idle timeout), ``SESSION_COOKIE_NAME``, ``_DOMAIN``,
``_PATH`` (else ``APPLICATION_ROOT``), ``_HTTPONLY``, ``_SECURE``, ``_SAMESITE``,
``_PARTITIONED``, ``SESSION_REFRESH_EACH_REQUEST``, ``SESSION_PERMANENT`` (Flask-Session's:
the permanence of new sessions, default False as in Flask) and ``REDIS_SESSIONS_URL`` (the
default store's Redis URL; else ``$REDIS_URL``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flask
from flask.sessions import SessionInterface, SessionMixin

from ._adapter import SyncDriver, unavailable_body, unavailable_headers
from ._config import DAY, SessionConfig
from ._engine import SessionEngine, now_ms
from ._errors import ConfigError, StoreUnavailableError
from ._rules import is_secure_request
from ._session import Session
from ._stores import SyncStore

__all__ = ["FlaskSession", "RedisSessionInterface", "RedisSessions", "get_session"]

EXTENSION_KEY = "redis_sessions"

# Starlette-style aliases `SessionConfig.from_options` accepts, by the option they set.
_ALIASES = {
    "secret_key": "secret",
    "max_age": "idle_timeout",
    "session_cookie": "name",
    "https_only": "secure",
}


class FlaskSession(Session, SessionMixin):
    """A `Session` that is also Flask's `SessionMixin`: what ``flask.session`` holds.

    ``permanent`` is stored in the session (key ``"_permanent"``, as Flask does) and decides
    the cookie: permanent sends ``Max-Age`` (the session's remaining idle time), otherwise a
    browser-session cookie; the Redis TTL is the idle timeout either way. Setting
    ``modified = True`` forces every key to be written, like `mark_modified()`; setting it
    False does not discard changes. ``new`` is `is_new`.
    """

    __slots__ = ("_permanent_default", "accessed")

    def __init__(
        self, *, genid: Callable[[], str], created_ms: int, permanent: bool = False
    ) -> None:
        super().__init__(genid=genid, created_ms=created_ms)
        self.accessed = False  # set by Flask when the request uses flask.session
        self._permanent_default = permanent

    @property
    def permanent(self) -> bool:
        """Persistent cookie (True) or browser-session cookie (False, Flask's default)."""
        return bool(self.get("_permanent", self._permanent_default))

    @permanent.setter
    def permanent(self, value: bool) -> None:
        value = bool(value)
        if value != self.permanent:
            self.touch()  # re-send the cookie even if the id is unchanged: its expiry changed
            self["_permanent"] = value

    @property
    def new(self) -> bool:  # type: ignore[override]  # a plain attribute in SessionMixin
        """True when the session was not loaded from Redis (Flask's ``session.new``)."""
        return self.is_new

    @property
    def modified(self) -> bool:
        """True when keys were set or deleted (nested changes are found at save time)."""
        return self.is_modified

    @modified.setter
    def modified(self, value: bool) -> None:
        if value:
            if self._loader is not None:
                self._ensure()  # a later first load would reset the flag
            self.mark_modified()

    def _is_permanent_now(self) -> bool:
        """`permanent` without loading a session the request never looked at."""
        if self._loader is not None:
            return self._permanent_default
        return bool(dict.get(self, "_permanent", self._permanent_default))


class RedisSessionInterface(SessionInterface):
    """Flask's `SessionInterface` over a sync store; installed by `RedisSessions`.

    `open_session` does no I/O: the session loads on first access (taking the session's lock
    first on the routes the ``lock`` option names; the save frees it). `save_session` runs after
    every ``after_request`` function, so their changes are saved too. Flask calls it once the
    response object exists, and an exception there would become a 500; so a failed save
    turns that same response object (which Flask then sends) into a 503 with
    ``Retry-After``: the client never gets a 2xx for a write that was lost. A store error
    while loading, raised inside a view, is answered by `unavailable_response`, registered
    as the app's handler for `StoreUnavailableError` (register your own to override it).

    Args:
        store: a `RedisStore` (or `MemoryStore` in unit tests).
        config: the settings; its cookie is the browser-session one.
        permanent_config: the settings for permanent sessions (persistent cookie).
        permanent: whether new sessions are permanent.
    """

    def __init__(
        self,
        store: SyncStore,
        config: SessionConfig,
        permanent_config: SessionConfig,
        *,
        permanent: bool = False,
    ) -> None:
        self.store = store
        self.config = config
        self.permanent = permanent
        self.engine = SessionEngine(config, serializer=store.serializer, max_size=store.max_size)
        self.permanent_engine = SessionEngine(
            permanent_config, serializer=store.serializer, max_size=store.max_size
        )

    def open_session(self, app: flask.Flask, request: flask.Request) -> FlaskSession:
        """The request's session, unloaded: Redis is read on first access."""
        environ = request.environ
        engine = self.engine
        now = now_ms()
        session = FlaskSession(genid=engine.new_id, created_ms=now, permanent=self.permanent)
        secure = is_secure_request(
            environ.get("wsgi.url_scheme", "http"),
            environ.get("HTTP_X_FORWARDED_PROTO"),
            trust_proxy=self.config.trust_proxy,
        )
        cycle = engine.begin(
            environ.get("HTTP_COOKIE"),
            secure=secure,
            path=request.path,
            now_ms=now,
            session=session,
        )
        # The WSGI adapter's driver: lazy load, save() and reload() work the same here.
        SyncDriver(self.store, cycle).load_lazily()
        return session

    def save_session(
        self, app: flask.Flask, session: SessionMixin, response: flask.Response
    ) -> None:
        """Write the session and add its headers; a store failure makes `response` a 503."""
        if not isinstance(session, FlaskSession) or not isinstance(session._binding, SyncDriver):
            return
        if session.accessed:
            response.vary.add("Cookie")  # as Flask's own interface: the page may depend on it
        driver = session._binding
        # Permanence is per session in Flask: pick the cookie settings that match it.
        permanent = session._is_permanent_now()
        driver.cycle.engine = self.permanent_engine if permanent else self.engine
        try:
            headers = driver.commit()
        except StoreUnavailableError as exc:
            self._make_unavailable(response, exc)
            return
        for name, value in headers:
            if name == "vary":
                response.vary.add(value)
            else:
                response.headers.add(name, value)

    def unavailable_response(self, error: StoreUnavailableError) -> flask.Response:
        """The 503 (with ``Retry-After``) answered when Redis fails inside a view."""
        body = unavailable_body(error)
        return flask.Response(body, 503, unavailable_headers(self.config.retry_after, body))

    def _make_unavailable(self, response: flask.Response, error: BaseException) -> None:
        body = response.response
        close = getattr(body, "close", None)
        if close is not None:
            close()  # a streamed body that will never be sent
        response.status_code = 503
        response.headers.clear()
        response.direct_passthrough = False
        text = unavailable_body(error)
        response.set_data(text)
        for name, value in unavailable_headers(self.config.retry_after, text):
            response.headers[name] = value


class RedisSessions:
    """The Flask extension: ``RedisSessions(app)``, or ``RedisSessions(...).init_app(app)``.

    Args:
        app: the app to install into now (or call `init_app` later, once per app).
        store: a `RedisStore` shared by every app (default: one `RedisStore` per app on
            ``REDIS_SESSIONS_URL`` from the app's config, else ``$REDIS_URL``).
        config: a `SessionConfig` used as given (the app's Flask settings are then not read,
            except ``SESSION_PERMANENT``).
        permanent: permanence of new sessions (default ``SESSION_PERMANENT``, else False).
        **options: `SessionConfig` / `CookieConfig` fields, flat; they win over the app's
            Flask settings. ``persist`` is refused: ``session.permanent`` decides it.
    """

    def __init__(
        self,
        app: flask.Flask | None = None,
        *,
        store: SyncStore | None = None,
        config: SessionConfig | None = None,
        permanent: bool | None = None,
        **options: Any,
    ) -> None:
        if "persist" in options:
            raise ConfigError(
                "persist: under Flask, session.permanent decides the cookie "
                "(set SESSION_PERMANENT or permanent=)"
            )
        self.store = store
        self.config = config
        self.permanent = permanent
        self.options = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: flask.Flask) -> None:
        """Install the session interface and the 503 handler into `app`.

        Raises `ConfigError` when no secret is available or an option is invalid.
        """
        from .store._sync import RedisStore

        settings = app.config
        store = self.store
        if store is None:
            store = RedisStore(url=settings.get("REDIS_SESSIONS_URL"))
        if self.config is None:
            base = SessionConfig.from_options(None, _options_from_app(app, self.options))
        else:
            base = SessionConfig.from_options(self.config, self.options)
        rolling = base.rolling
        if self.config is None and "rolling" not in self.options:
            # Flask re-sends a permanent session's cookie on every response by default.
            rolling = bool(settings.get("SESSION_REFRESH_EACH_REQUEST", True))
        browser = dataclasses.replace(base, cookie=dataclasses.replace(base.cookie, persist=False))
        permanent_config = dataclasses.replace(
            base, rolling=rolling, cookie=dataclasses.replace(base.cookie, persist=True)
        )
        permanent = self.permanent
        if permanent is None:
            permanent = bool(settings.get("SESSION_PERMANENT", False))
        interface = RedisSessionInterface(store, browser, permanent_config, permanent=permanent)
        app.session_interface = interface
        app.register_error_handler(StoreUnavailableError, interface.unavailable_response)
        app.extensions[EXTENSION_KEY] = interface


def _options_from_app(app: flask.Flask, options: dict[str, Any]) -> dict[str, Any]:
    """`options` completed with the app's Flask settings for what they do not give."""
    opts = dict(options)
    given = set(opts) | {_ALIASES[k] for k in opts if k in _ALIASES}
    settings = app.config
    if "secret" not in given:
        if not app.secret_key:
            raise ConfigError(
                "secret: set app.secret_key (SECRET_KEY) before RedisSessions(app), or pass secret="
            )
        # Flask lists fallbacks oldest first; ours are newest first.
        fallbacks = list(settings.get("SECRET_KEY_FALLBACKS") or ())
        opts["secret"] = [app.secret_key, *reversed(fallbacks)]
    if "idle_timeout" not in given:
        opts["idle_timeout"] = app.permanent_session_lifetime.total_seconds()
    idle = opts.get("idle_timeout", opts.get("max_age"))
    if "lifetime" not in given and isinstance(idle, (int, float)):
        # Keep the absolute cap, but never below the lifetime Flask promises the cookie.
        opts["lifetime"] = max(30 * DAY, float(idle))
    if "cookie" in opts:
        return opts  # a CookieConfig given as a whole: Flask's cookie settings do not apply
    flask_cookie = {
        "name": settings.get("SESSION_COOKIE_NAME") or "session",
        "domain": settings.get("SESSION_COOKIE_DOMAIN") or None,  # older Flask used False
        "path": settings.get("SESSION_COOKIE_PATH") or settings.get("APPLICATION_ROOT") or "/",
        "http_only": bool(settings.get("SESSION_COOKIE_HTTPONLY", True)),
        # Flask's False means "not forced": Secure exactly when the request is HTTPS.
        "secure": True if settings.get("SESSION_COOKIE_SECURE") else "auto",
        "partitioned": bool(settings.get("SESSION_COOKIE_PARTITIONED", False)),
    }
    same_site = settings.get("SESSION_COOKIE_SAMESITE")
    if same_site:  # None (Flask's default) sends no attribute; ours sends our default, Lax
        flask_cookie["same_site"] = str(same_site).lower()
    for option, value in flask_cookie.items():
        if option not in given:
            opts[option] = value
    return opts


def get_session() -> FlaskSession:
    """The current request's session, typed (``flask.session`` is typed as `SessionMixin`).

    Raises `LookupError` when the app's session interface is not `RedisSessionInterface`.
    """
    proxy: Any = flask.session
    session = proxy._get_current_object()
    if not isinstance(session, FlaskSession):
        raise LookupError("no redis session: is RedisSessions(app) installed?")
    return session
