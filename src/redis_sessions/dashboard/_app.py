"""The dashboard's routes: list, detail, delete, stats; and `create_dashboard`."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from .._errors import ConfigError, StoreUnavailableError
from ..store._async import AsyncRedisStore
from ..store._listing import SessionInfo
from . import _render, _security
from ._stats import StatsCache, aclose

__all__ = ["STANDALONE_PATH", "create_dashboard", "standalone"]

# Time budgets of one scan (seconds): a page answers in about this long on any keyspace size.
LIST_BUDGET_S = 2.0
STATS_BUDGET_S = 3.0
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_FORM_BYTES = 4096
MAX_QUERY_TEXT = 200
TOP_USERS = 10
STANDALONE_PATH = "/_dashboard"  # where the dashboard served alone lives: its cookies' path
_FLASH_HANDLE = re.compile(r"[A-Za-z0-9_-]{1,16}")


class _Dashboard:
    """The route handlers, sharing the store and options."""

    def __init__(
        self,
        store: AsyncRedisStore,
        access: _security.Access,
        *,
        user_field: str,
        title: str,
        refresh: int,
    ) -> None:
        self.store = store
        self.access = access
        self.user_field = user_field
        self.title = title
        self.refresh = refresh
        self.stats = StatsCache(max_age=max(refresh, 5))

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _root(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    def _refresh_for(self, request: Request) -> tuple[int, bool]:
        """(seconds, paused): ``?refresh=0`` pauses the auto-refresh."""
        paused = request.query_params.get("refresh") == "0"
        return (0 if paused else self.refresh), paused

    def _html(
        self,
        request: Request,
        body: str,
        *,
        heading: str = "",
        active: str = "",
        status: int = 200,
        refresh_url: str = "",
    ) -> HTMLResponse:
        refresh, _ = self._refresh_for(request) if refresh_url else (0, False)
        document = _render.page(
            self.title,
            self._root(request),
            body,
            active=active,
            heading=heading,
            refresh=refresh,
            refresh_url=refresh_url,
            meta=f"keys {self.store.prefix}{{handle}} · user field {self.user_field!r}",
        )
        return HTMLResponse(document, status_code=status)

    def _handle_prefix(self, text: str) -> str:
        """What the user typed in the key/handle box, as a handle prefix."""
        text = text.strip()[:MAX_QUERY_TEXT]
        if text.startswith(self.store.prefix):
            text = text[len(self.store.prefix) :]
        return text.removeprefix("{").removesuffix("}")

    # -- pages -----------------------------------------------------------------------------

    async def list_page(self, request: Request) -> Response:
        """``GET /``: sessions, filtered by handle prefix and/or user, at most ``limit``."""
        params = request.query_params
        match = params.get("match", "").strip()[:MAX_QUERY_TEXT]
        user = params.get("user", "").strip()[:MAX_QUERY_TEXT]
        exact = params.get("exact") == "1"
        try:
            limit = min(MAX_LIMIT, max(1, int(params.get("limit", DEFAULT_LIMIT))))
        except ValueError:
            limit = DEFAULT_LIMIT
        wanted = user.casefold()

        def keep(info: SessionInfo) -> bool:
            if not user:
                return True
            if info.user is None:
                return False
            return info.user == user if exact else wanted in info.user.casefold()

        rows: list[SessionInfo] = []
        more = partial = False
        scanned = 0
        deadline = time.monotonic() + LIST_BUDGET_S
        iterator = self.store.sessions(self._handle_prefix(match), self.user_field)
        try:
            async for info in iterator:
                scanned += 1
                if keep(info):
                    if len(rows) == limit:
                        more = True
                        break
                    rows.append(info)
                if time.monotonic() > deadline:
                    partial = True
                    break
        finally:
            await aclose(iterator)
        rows.sort(key=lambda info: info.created_ms or 0, reverse=True)
        stats = await self.stats.get(self.store, self.user_field, STATS_BUDGET_S)
        root = self._root(request)
        query = {k: v for k, v in parse_qsl(request.url.query) if k not in ("flash", "h")}
        _, paused = self._refresh_for(request)
        body = _render.list_body(
            root=root,
            rows=rows,
            now_ms=int(time.time() * 1000),
            stats=stats,
            match=match,
            user=user,
            exact=exact,
            limit=limit,
            more=more,
            partial=partial,
            scanned=scanned,
            flash=self._flash(request),
            refresh=self.refresh,
            paused=paused,
            query=query,
        )
        # The refresh reloads the same view, minus the one-time flash message.
        return self._html(request, body, active="list", refresh_url=_render.url(root, "/", query))

    @staticmethod
    def _flash(request: Request) -> str:
        # Fixed messages only: a crafted link cannot put arbitrary text on the page.
        code = request.query_params.get("flash", "")
        handle = request.query_params.get("h", "")
        short = handle if _FLASH_HANDLE.fullmatch(handle) else ""
        if code == "deleted":
            return f"Session {short}… deleted: its user is logged out."
        if code == "gone":
            return "That session no longer existed (expired or already deleted)."
        return ""

    async def detail_page(self, request: Request) -> Response:
        """``GET /s/{handle}``: metadata, data as JSON, and the delete form."""
        handle = request.path_params["handle"]
        if not _security.is_handle(handle):  # any other key under the prefix stays out of reach
            return self._not_found(request)
        info = await self.store.describe(handle, self.user_field)
        if info is None:
            return self._not_found(request)
        data = await self.store.get(handle)
        csrf, fresh = self.access.csrf_for(request)
        body = _render.detail_body(
            root=self._root(request),
            info=info,
            data=data,
            now_ms=int(time.time() * 1000),
            csrf=csrf,
            csrf_field=_security.CSRF_FIELD,
        )
        response = self._html(request, body, heading=f"Session {handle[:12]}")
        if fresh:
            self.access.set_cookie(response, request.scope, _security.CSRF_COOKIE, csrf)
        return response

    async def delete(self, request: Request) -> Response:
        """``POST /s/{handle}/delete``: CSRF check, `store.destroy`, 303 back to the list."""
        handle = request.path_params["handle"]
        if request.headers.get("sec-fetch-site") in (
            "cross-site",
            "same-site",
        ) or _security.foreign_origin(request):
            return self._forbidden(request, "Cross-site requests cannot delete sessions.")
        field = await _form_field(request, _security.CSRF_FIELD)
        if not self.access.csrf_valid(request, field):
            return self._forbidden(
                request, "Missing or wrong CSRF token: reload the session page and try again."
            )
        if not _security.is_handle(handle):
            return self._not_found(request)
        deleted = await self.store.destroy(handle)
        self.stats.invalidate()
        query = {"flash": "deleted", "h": handle[:8]} if deleted else {"flash": "gone"}
        location = _render.url(self._root(request), "/", query)
        return RedirectResponse(location, status_code=303)

    async def stats_page(self, request: Request) -> Response:
        """``GET /stats``: cards, histograms (inline SVG), top users."""
        stats = await self.stats.get(self.store, self.user_field, STATS_BUDGET_S)
        refresh, paused = self._refresh_for(request)
        body = _render.stats_body(
            root=self._root(request),
            stats=stats,
            top=TOP_USERS,
            refresh=self.refresh,
            paused=paused,
        )
        url = _render.url(self._root(request), "/stats")
        return self._html(
            request, body, active="stats", heading="Statistics", refresh_url=url if refresh else ""
        )

    # -- errors ----------------------------------------------------------------------------

    def _forbidden(self, request: Request, text: str) -> HTMLResponse:
        body = _render.message_page(self.title, self._root(request), "Forbidden", _render.esc(text))
        return HTMLResponse(body, status_code=403)

    def _not_found(self, request: Request) -> HTMLResponse:
        root = self._root(request)
        text = (
            f'No such session (expired or deleted). <a href="{_render.link(root, "/")}">'
            "Back to the list</a>."
        )
        body = _render.message_page(self.title, root, "Not found", text)
        return HTMLResponse(body, status_code=404)

    async def http_error(self, request: Request, exc: Exception) -> Response:
        """Starlette's 404 / 405 as dashboard pages."""
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return self._not_found(request)
        body = _render.message_page(
            self.title, self._root(request), "Error", _render.esc(exc.detail)
        )
        return HTMLResponse(body, status_code=exc.status_code, headers=exc.headers)

    async def unavailable(self, request: Request, exc: Exception) -> Response:
        """Redis down (or loading, read-only...): a 503 page that retries by itself."""
        reason = exc.reason if isinstance(exc, StoreUnavailableError) else "error"
        root = self._root(request)
        text = (
            f"The session store cannot answer right now ({_render.esc(reason)}). "
            "This page retries every 5 seconds."
        )
        retry = str(request.url.path) + (f"?{request.url.query}" if request.url.query else "")
        body = _render.message_page(
            self.title, root, "Redis is unavailable", text, refresh=5, refresh_url=retry
        )
        return HTMLResponse(body, status_code=503, headers={"retry-after": "5"})


async def _form_field(request: Request, name: str) -> str | None:
    """One field of a small url-encoded form body (bigger or other bodies: None).

    Parsed here, bounded, rather than with `request.form()`, which needs python-multipart.
    """
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    for key, value in parse_qsl(body.decode("latin-1"), keep_blank_values=True):
        if key == name:
            return value
    return None


def create_dashboard(
    store: AsyncRedisStore,
    *,
    token: str | None = None,
    no_token: bool = False,
    secure_cookies: bool | None = None,
    login_ttl: int = _security.DEFAULT_LOGIN_TTL,
    user_field: str = "user",
    title: str = "redis-sessions",
    refresh: int = 10,
) -> Starlette:
    """The sessions dashboard, an ASGI app to mount in any ASGI app, under a path of its own.

    ``Mount("/_sessions", create_dashboard(store, token=TOKEN))``: every link stays under the
    mount point, and its cookies are scoped to it (served alone, see `standalone`).

    Args:
        store: the `AsyncRedisStore` whose sessions to show (the caller keeps ownership and
            closes it).
        token: the access token (at least 16 characters), required unless `no_token`. Every
            request must carry it: ``Authorization: Bearer <token>`` (scripts), or the login
            cookie that a visit with ``?token=<token>`` exchanges it for (the answer redirects
            at once to the address without the token).
        no_token: opt in to token-less access: loopback clients addressing the dashboard by a
            loopback name only, and never through a proxy (a request carrying ``Forwarded``,
            ``X-Forwarded-*``, ``X-Real-IP`` or ``Via`` gets a 403).
        secure_cookies: True: the login and CSRF cookies are always ``Secure`` (behind a proxy
            that terminates TLS); the default sets it on HTTPS requests only.
        login_ttl: seconds the login cookie opens the dashboard (8 hours by default); then the
            token is asked for again.
        user_field: the session key naming the user (shown, and searchable).
        title: shown in the header and the window title.
        refresh: auto-refresh period of the list and stats pages in seconds (0: off).

    Raises:
        ConfigError: no token without `no_token` (or both), a token too short, `login_ttl` or
            `refresh` out of range.
    """
    if token == "":
        token = None
    if token is None and not no_token:
        raise ConfigError(
            "dashboard token: required (it shows and deletes every user's session); generate "
            "one with secrets.token_urlsafe(32), or pass no_token=True for loopback-only "
            "access without one"
        )
    if token is not None and no_token:
        raise ConfigError("dashboard token: no_token=True and a token exclude each other")
    _security.check_token(token)
    if not isinstance(login_ttl, int) or isinstance(login_ttl, bool) or login_ttl <= 0:
        raise ConfigError(f"login_ttl: must be a positive int of seconds, got {login_ttl!r}")
    if not isinstance(refresh, int) or refresh < 0:
        raise ConfigError(f"refresh: must be a non-negative int of seconds, got {refresh!r}")
    access = _security.Access(token, secure_cookies=secure_cookies, login_ttl=login_ttl)
    views = _Dashboard(store, access, user_field=user_field, title=title, refresh=refresh)
    routes = [
        Route("/", views.list_page, methods=["GET"]),
        Route("/stats", views.stats_page, methods=["GET"]),
        Route("/s/{handle}", views.detail_page, methods=["GET"]),
        Route("/s/{handle}/delete", views.delete, methods=["POST"]),
    ]
    handlers: dict[Any, Any] = {
        StoreUnavailableError: views.unavailable,
        HTTPException: views.http_error,
    }
    return Starlette(
        routes=routes,
        middleware=[Middleware(_security.Guard, access=access, title=title)],
        exception_handlers=handlers,
    )


def standalone(dashboard: ASGIApp, path: str = STANDALONE_PATH) -> Starlette:
    """`dashboard` served alone: under `path` (so that its cookies are sent there only, not
    to every other service of the host name), with ``/`` redirecting to it."""

    async def to_dashboard(request: Request) -> Response:
        return RedirectResponse(path + "/", status_code=307)

    return Starlette(
        routes=[Route("/", to_dashboard, methods=["GET", "HEAD"]), Mount(path, dashboard)]
    )
