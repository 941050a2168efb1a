"""Who may use the dashboard, and how: loopback-or-token access, CSRF tokens, response headers.

Without a token the dashboard answers loopback clients only. With a token every request must
carry it: ``Authorization: Bearer <token>``, or the cookie set after a first visit with
``?token=<token>`` (the redirect drops the token from the address bar and history).
Mutating requests are POSTs with a double-submit CSRF token: a random per-browser cookie that
the form repeats in a hidden field.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from urllib.parse import parse_qsl, quote, urlencode

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import _render

__all__ = [
    "AUTH_COOKIE",
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "Guard",
    "check_bind",
    "check_token",
    "cookie_path",
    "csrf_matches",
    "is_csrf_token",
    "is_loopback",
    "new_csrf_token",
    "set_cookie",
]

AUTH_COOKIE = "rs_dashboard_auth"
CSRF_COOKIE = "rs_dashboard_csrf"
CSRF_FIELD = "csrf"
MIN_TOKEN_LENGTH = 16

SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "content-security-policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}

_CSRF_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")


def is_loopback(host: str) -> bool:
    """Tell whether `host` is a loopback address: 127.0.0.0/8, ::1 (also IPv4-mapped), or
    ``localhost``. Names other than ``localhost`` are not resolved: they count as remote."""
    text = host.strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]  # an IPv6 zone id
    if text == "localhost":
        return True
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def check_token(token: str | None) -> None:
    """Raise ValueError when a configured token is too short to be a secret."""
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(
            f"dashboard token: must be at least {MIN_TOKEN_LENGTH} characters "
            f"(got {len(token)}); generate one with: python -c "
            "'import secrets; print(secrets.token_urlsafe(32))'"
        )


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve the dashboard on `host` without an access token unless `host` is a
    loopback address (127.0.0.0/8, ::1, localhost).

    Raises:
        ValueError: `host` is not loopback and `token` is empty, or `token` is too short.
    """
    if token == "":
        token = None
    check_token(token)
    if token is None and not is_loopback(host):
        raise ValueError(
            f"refusing to serve the sessions dashboard on {host!r} without an access token: "
            "it shows and deletes every user's session. Bind to a loopback address "
            "(127.0.0.1, ::1, localhost) or configure a token of at least "
            f"{MIN_TOKEN_LENGTH} characters."
        )


def _same(a: str, b: str) -> bool:
    # compare_digest on str accepts ASCII only: compare the UTF-8 bytes instead.
    return hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("utf-8", "replace"))


def new_csrf_token() -> str:
    """A fresh random CSRF token (256 bits)."""
    return secrets.token_urlsafe(32)


def is_csrf_token(value: str | None) -> bool:
    """Tell whether a CSRF cookie has the shape of one `new_csrf_token` made."""
    return value is not None and _CSRF_SHAPE.fullmatch(value) is not None


def csrf_matches(cookie: str | None, field: str | None) -> bool:
    """The double-submit check: the cookie is well formed and the form field repeats it."""
    if not is_csrf_token(cookie) or not field:
        return False
    assert cookie is not None
    return _same(cookie, field)


def cookie_path(scope: Scope) -> str:
    """The dashboard's mount point: its cookies are sent to it only."""
    return str(scope.get("root_path", "")).rstrip("/") or "/"


def set_cookie(response: Response, scope: Scope, name: str, value: str) -> None:
    """Set one of the dashboard's cookies: HttpOnly, SameSite=Strict, scoped to the mount
    point, Secure over HTTPS. No Max-Age: they end with the browser session."""
    response.set_cookie(name, value, path=cookie_path(scope), httponly=True,
                        samesite="strict", secure=scope.get("scheme") == "https")


class Guard:
    """ASGI middleware in front of every dashboard route: access control and security headers.

    Args:
        app: the dashboard's routes.
        token: the access token, or None for loopback-only access.
        title: shown on the refusal pages.
    """

    def __init__(self, app: ASGIApp, token: str | None, title: str) -> None:
        self.app = app
        self.token = token
        self.title = title
        # The cookie holds a digest of the token, not the token itself.
        self.cookie_value = (
            hmac.new(token.encode(), b"redis-sessions dashboard cookie", hashlib.sha256)
            .hexdigest() if token else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def _refusal(self, scope: Scope) -> Response | None:
        request = Request(scope)
        if self.token is None:
            client = scope.get("client")
            if not (client and is_loopback(str(client[0]))):
                return self._page(request, 403, "Forbidden", _render.REMOTE_REFUSED)
            # A loopback peer with a foreign Host is a DNS-rebinding page in a local browser.
            host = request.headers.get("host")
            if host is not None and not is_loopback(_host_name(host)):
                return self._page(request, 403, "Forbidden", _render.HOST_REFUSED)
            return None
        authorization = request.headers.get("authorization", "")
        scheme, _, credential = authorization.partition(" ")
        if scheme.lower() == "bearer" and _same(credential.strip(), self.token):
            return None
        cookie = request.cookies.get(AUTH_COOKIE)
        assert self.cookie_value is not None
        if cookie is not None and _same(cookie, self.cookie_value):
            return None
        offered = request.query_params.get("token")
        if offered is not None and request.method in ("GET", "HEAD") \
                and _same(offered, self.token):
            redirect = RedirectResponse(_without_token(scope), status_code=303)
            set_cookie(redirect, scope, AUTH_COOKIE, self.cookie_value)
            return redirect
        response = self._page(request, 401, "Access token required", _render.TOKEN_REQUIRED)
        response.headers["www-authenticate"] = 'Bearer realm="redis-sessions dashboard"'
        return response

    def _page(self, request: Request, status: int, heading: str, text: str) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        body = _render.message_page(self.title, root, heading, text)
        return HTMLResponse(body, status_code=status)


def _host_name(host: str) -> str:
    """A Host header without its port (``[::1]:80`` -> ``[::1]``)."""
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0]


def _without_token(scope: Scope) -> str:
    """The request's path and query without ``token``, as a same-origin redirect target."""
    path = "/" + str(scope.get("path", "/")).lstrip("/")  # never "//host": no open redirect
    query = scope.get("query_string", b"").decode("latin-1")
    kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "token"]
    location = quote(path)
    return f"{location}?{urlencode(kept)}" if kept else location
