"""`StoreUnavailableMiddleware`: Redis down is a ``503`` with ``Retry-After`` in Django."""

from __future__ import annotations

from typing import Any

from django.contrib.sessions.exceptions import (
    SessionInterrupted,
)
from django.http import HttpRequest, HttpResponse
from django.utils.deprecation import MiddlewareMixin

from .._adapter import unavailable_body, unavailable_headers
from .._errors import StoreUnavailableError
from . import SessionStore
from ._settings import _backend

__all__ = ["StoreUnavailableMiddleware"]


def _is_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, StoreUnavailableError) or (
        isinstance(exc, SessionInterrupted) and isinstance(exc.__cause__, StoreUnavailableError)
    )


def _unavailable_response(error: BaseException | None) -> HttpResponse:
    body = unavailable_body(error)
    response = HttpResponse(body, status=503)
    for name, value in unavailable_headers(_backend().options.retry_after, body):
        response[name] = value
    return response


class StoreUnavailableMiddleware(MiddlewareMixin):  # type: ignore[misc]
    """Answers ``503 Service Unavailable`` with ``Retry-After`` when Redis cannot serve the
    session, instead of a 500 (a failed load) or a 400 (a failed save).

    Put it before ``django.contrib.sessions.middleware.SessionMiddleware`` in `MIDDLEWARE`, so
    it also sees the save that Django's middleware makes on the way out. A response whose
    session could not be saved is never a 2xx: the write was lost.
    """

    def process_exception(self, request: HttpRequest, exception: Exception) -> Any:
        """A view (or the session load it triggered) failed on Redis: answer 503."""
        if not _is_unavailable(exception):
            return None
        cause = exception.__cause__ if isinstance(exception, SessionInterrupted) else exception
        return _unavailable_response(cause)

    def process_response(self, request: HttpRequest, response: Any) -> Any:
        """The session's save failed on Redis: replace the response with a 503."""
        session = getattr(request, "session", None)
        if isinstance(session, SessionStore) and session._unavailable:
            return _unavailable_response(session._unavailable)
        return response
