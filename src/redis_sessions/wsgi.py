"""WSGI session middleware: the session is loaded lazily, on first access.

The session is at ``environ["redis_sessions.session"]`` (or `get_session(environ)`). A request
that never touches it costs no Redis round trip, even with a cookie. It is written when the app
calls ``start_response``, where the ``Set-Cookie`` header is added.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ._adapter import SyncDriver, replaces_answer, unavailable_body, unavailable_headers
from ._config import SessionConfig
from ._engine import SessionEngine
from ._errors import StoreUnavailableError
from ._rules import is_secure_request
from ._session import Session
from ._stores import SyncStore

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


def _status_code(status: str) -> int:
    try:
        return int(status.split(" ", 1)[0])
    except ValueError:
        return 500


def _discard(data: bytes) -> None:
    """The ``write`` callable of an answer replaced by our 503: the app's bytes are dropped."""


def _close(body: Iterable[bytes]) -> None:
    close = getattr(body, "close", None)
    if close is not None:
        close()


class _Body:
    """A response body whose ``close()`` (which the WSGI server always calls, iterated or not)
    also frees the session's lock if the save did not, and whose chunks give way to our 503
    when the app's start_response, called during the iteration, was replaced."""

    __slots__ = ("body", "release", "replacement")

    def __init__(
        self,
        body: Iterable[bytes],
        release: Callable[[], None],
        replacement: Callable[[], bytes | None],
    ) -> None:
        self.body = body
        self.release = release
        self.replacement = replacement

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.body:
            ours = self.replacement()
            if ours is not None:
                yield ours
                return
            yield chunk

    def close(self) -> None:
        try:
            _close(self.body)
        finally:
            self.release()


class SessionMiddleware:
    """Server-side sessions for any WSGI app.

    Args:
        app: the WSGI app.
        store: a `RedisStore` or `MemoryStore` (default: `RedisStore` on ``$REDIS_URL``).
        config: a `SessionConfig` to start from.
        **options: `SessionConfig` / `CookieConfig` fields, flat (``secret=``...).

    With the ``lock`` option (True, path prefixes or a predicate on ``PATH_INFO``), matching
    requests take the session's lock when they first use the session and free it with the
    save (see `SessionConfig.lock`); a request that cannot get it within ``lock_timeout``
    answers 503.
    """

    def __init__(
        self,
        app: WSGIApp,
        store: SyncStore | None = None,
        *,
        config: SessionConfig | None = None,
        **options: Any,
    ) -> None:
        if store is None:
            from .store._sync import RedisStore

            store = RedisStore()
        self.app = app
        self.store = store
        self.config = SessionConfig.from_options(config, options)
        self.engine = SessionEngine(
            self.config, serializer=store.serializer, max_size=store.max_size
        )

    def __call__(self, environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
        secure = is_secure_request(
            environ.get("wsgi.url_scheme", "http"),
            environ.get("HTTP_X_FORWARDED_PROTO"),
            trust_proxy=self.config.trust_proxy,
        )
        cycle = self.engine.begin(
            environ.get("HTTP_COOKIE"), secure=secure, path=environ.get("PATH_INFO", "")
        )
        driver = SyncDriver(self.store, cycle)
        driver.load_lazily()
        environ[ENVIRON_KEY] = cycle.session
        failed: StoreUnavailableError | None = None
        called = False

        def wrapped_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            nonlocal failed, called
            called = True
            if cycle.failure is not None and replaces_answer(
                _status_code(status), any(k.lower() == "retry-after" for k, _ in headers)
            ):
                # The framework answered our store error with its own 5xx page.
                failed = cycle.failure
                self._unavailable(start_response, exc_info, failed)
                return _discard
            try:
                extra = driver.commit()
            except StoreUnavailableError as exc:
                failed = exc
                self._unavailable(start_response, exc_info, exc)
                return _discard
            return start_response(status, [*headers, *((k.title(), v) for k, v in extra)], exc_info)

        try:
            body = self.app(environ, wrapped_start_response)
        except StoreUnavailableError as exc:
            driver.release()
            self._unavailable(start_response, None, exc)
            return [unavailable_body(exc)]
        except BaseException:
            driver.release()
            raise
        if failed is not None:
            _close(body)
            driver.release()
            return [unavailable_body(failed)]
        if not called or cycle.lock is not None:
            # A lazy app (a generator) calls start_response while its body is iterated: the
            # save frees the lock then (if it never does, closing the body frees it), and an
            # answer replaced by our 503 is dropped there.
            return _Body(
                body,
                driver.release,
                lambda: None if failed is None else unavailable_body(failed),
            )
        return body

    def _unavailable(
        self, start_response: StartResponse, exc_info: Any, error: BaseException
    ) -> Any:
        body = unavailable_body(error)
        headers = [(k.title(), v) for k, v in unavailable_headers(self.config.retry_after, body)]
        return start_response("503 Service Unavailable", headers, exc_info)
