"""A complete adapter for a framework redis-sessions does not ship one for.

The "framework" here is the smallest one possible: a handler takes a `Request` and returns a
`Response`. Everything session-related is the adapter's `Sessions` class below, written on
`redis_sessions.engine` only; docs/design.md ("Writing an adapter") walks through it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis_sessions import Session, SessionConfig, StoreUnavailableError
from redis_sessions.engine import (
    AsyncDriver,
    AsyncStore,
    SessionEngine,
    is_secure_request,
    unavailable_body,
    unavailable_headers,
)


@dataclass
class Request:
    """What the framework hands a handler."""

    path: str = "/"
    scheme: str = "http"
    headers: dict[str, str] = field(default_factory=dict)
    session: Session | None = None


@dataclass
class Response:
    """What a handler returns."""

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


Handler = Callable[[Request], Awaitable[Response]]


class Sessions:
    """The adapter: ``await Sessions(store, secret=...)(request, handler)``."""

    def __init__(self, store: AsyncStore, **options: Any) -> None:
        self.store = store
        self.config = SessionConfig.from_options(None, options)
        self.engine = SessionEngine(
            self.config, serializer=store.serializer, max_size=store.max_size
        )

    async def __call__(self, request: Request, handler: Handler) -> Response:
        secure = is_secure_request(
            request.scheme,
            request.headers.get("x-forwarded-proto"),
            trust_proxy=self.config.trust_proxy,
        )
        cycle = self.engine.begin(request.headers.get("cookie"), secure=secure, path=request.path)
        driver = AsyncDriver(self.store, cycle)
        try:
            request.session = await driver.load()  # one round trip, or none
            response = await handler(request)
            response.headers.extend(await driver.commit())  # Set-Cookie, Vary, Cache-Control
            return response
        except StoreUnavailableError as exc:
            body = unavailable_body(exc)
            return Response(503, unavailable_headers(self.config.retry_after, body), body)
        finally:
            await driver.release()  # a lock still held (the handler raised), if any


async def counter(request: Request) -> Response:
    """A handler: counts the visits of one browser."""
    assert request.session is not None
    request.session["n"] = request.session.get("n", 0) + 1
    return Response(body=str(request.session["n"]).encode())
