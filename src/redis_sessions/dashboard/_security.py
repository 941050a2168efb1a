"""Who may use the dashboard, and how: token or loopback access, CSRF tokens, headers.

With a token (the default) every request must carry it: ``Authorization: Bearer <token>`` (for
scripts), or the login cookie that a first visit with ``?token=<token>`` exchanges it for (the
answer is a redirect to the same address without the token). The cookie holds an expiry and an
HMAC of it keyed by the token: it ends by itself, and holds nothing that opens the dashboard
after that. Deletes are POSTs whose CSRF field is an HMAC of the login cookie, keyed by the token,
so a value planted or guessed by another origin never matches; a foreign ``Origin`` is refused.

Without a token (an explicit opt-in) the dashboard answers loopback clients addressing it by a
loopback name only, and refuses any request relayed by a proxy (it carries ``Forwarded``,
``X-Forwarded-*``, ``X-Real-IP`` or ``Via``). Its deletes use a double-submit CSRF cookie plus the
same ``Origin`` check.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
import time
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._errors import ConfigError
from . import _render

__all__ = [
    "AUTH_COOKIE",
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "DEFAULT_LOGIN_TTL",
    "Access",
    "Guard",
    "check_bind",
    "check_token",
    "cookie_path",
    "foreign_origin",
    "is_handle",
    "is_loopback",
    "proxy_header",
]

AUTH_COOKIE = "rs_dashboard_auth"
CSRF_COOKIE = "rs_dashboard_csrf"
CSRF_FIELD = "csrf"
MIN_TOKEN_LENGTH = 16
DEFAULT_LOGIN_TTL = 8 * 3600  # seconds a login cookie opens the dashboard

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

# The headers a relaying proxy adds: a token-less dashboard refuses any request carrying one.
_PROXY_HEADERS = frozenset({"forwarded", "x-real-ip", "via"})
_RANDOM_43 = re.compile(r"[A-Za-z0-9_-]{43}")  # 256 bits, URL-safe base64, unpadded
_LOGIN_COOKIE = re.compile(r"([0-9]{1,12})\.([A-Za-z0-9_-]{43})")
_SCOPE_KEY = "redis_sessions.dashboard.auth"  # how the Guard let the request in


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


def is_handle(text: str) -> bool:
    """Tell whether `text` has the shape of a session handle (43 URL-safe characters)."""
    return _RANDOM_43.fullmatch(text) is not None


def proxy_header(scope: Scope) -> str | None:
    """The name of the first proxy header (``Forwarded``, ``X-Forwarded-*``, ``X-Real-IP``,
    ``Via``) the request carries, or None."""
    for raw, _ in scope.get("headers", ()):
        name = bytes(raw).decode("latin-1").lower()
        if name in _PROXY_HEADERS or name.startswith("x-forwarded-"):
            return name
    return None


def check_token(token: str | None) -> None:
    """Raise ConfigError when a configured token is too short to be a secret."""
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
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
        raise ConfigError(
            f"refusing to serve the sessions dashboard on {host!r} without an access token: "
            "it shows and deletes every user's session. Bind to a loopback address "
            "(127.0.0.1, ::1, localhost) or configure a token of at least "
            f"{MIN_TOKEN_LENGTH} characters."
        )


def _same(a: str, b: str) -> bool:
    # compare_digest on str accepts ASCII only: compare the UTF-8 bytes instead.
    return hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("utf-8", "replace"))


def cookie_path(scope: Scope) -> str:
    """The dashboard's mount point: its cookies are sent to it only."""
    return str(scope.get("root_path", "")).rstrip("/") or "/"


class Access:
    """The dashboard's credentials: the token, the login cookie made from it, CSRF tokens.

    Args:
        token: the access token, or None for token-less (loopback-only) access.
        secure_cookies: True: the cookies are always ``Secure``; None: over HTTPS only.
        login_ttl: seconds a login cookie stays valid.
    """

    def __init__(
        self,
        token: str | None,
        *,
        secure_cookies: bool | None = None,
        login_ttl: int = DEFAULT_LOGIN_TTL,
    ) -> None:
        self.token = token
        self.secure_cookies = secure_cookies
        self.login_ttl = login_ttl
        # One key per token, so that a cookie or a CSRF token is never the token itself.
        self._key = (
            hmac.new(token.encode(), b"redis-sessions dashboard", hashlib.sha256).digest()
            if token
            else b""
        )

    def _sign(self, purpose: str, value: str) -> str:
        mac = hmac.new(self._key, f"{purpose}\0{value}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def login_cookie(self, now: float | None = None) -> str:
        """A login cookie value: ``<expiry>.<HMAC of it>``, valid for `login_ttl` seconds."""
        expiry = str(int(now if now is not None else time.time()) + self.login_ttl)
        return f"{expiry}.{self._sign('login', expiry)}"

    def login_valid(self, value: str | None, now: float | None = None) -> bool:
        """Tell whether `value` is a login cookie of this token that has not expired."""
        found = _LOGIN_COOKIE.fullmatch(value) if value and self.token else None
        if found is None:
            return False
        expiry, mac = found.groups()
        if int(expiry) <= (now if now is not None else time.time()):
            return False
        return _same(mac, self._sign("login", expiry))

    def set_cookie(
        self, response: Response, scope: Scope, name: str, value: str, *, max_age: int | None = None
    ) -> None:
        """Set one of the dashboard's cookies: HttpOnly, SameSite=Strict, scoped to the mount
        point, Secure over HTTPS or when asked."""
        secure = (
            self.secure_cookies
            if self.secure_cookies is not None
            else scope.get("scheme") == "https"
        )
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            expires=max_age,
            path=cookie_path(scope),
            httponly=True,
            samesite="strict",
            secure=secure,
        )

    def csrf_for(self, request: Request) -> tuple[str, bool]:
        """The CSRF field for a form on this request's page, and whether the page must set
        it as the CSRF cookie too (token-less mode, first form of this browser)."""
        how = request.scope.get(_SCOPE_KEY)
        if how == "cookie":
            return self._sign("csrf", request.cookies.get(AUTH_COOKIE, "")), False
        if how == "bearer":
            return "", False  # a script: its POSTs need no CSRF field
        cookie = request.cookies.get(CSRF_COOKIE)
        if cookie is not None and _RANDOM_43.fullmatch(cookie):
            return cookie, False
        return secrets.token_urlsafe(32), True

    def csrf_valid(self, request: Request, field: str | None) -> bool:
        """The CSRF check of a POST: the signed field of the login cookie (token mode), or the
        double-submit cookie repeated in the field (token-less mode). Bearer requests pass:
        a browser never adds that header by itself."""
        how = request.scope.get(_SCOPE_KEY)
        if how == "bearer":
            return True
        if not field:
            return False
        if how == "cookie":
            return _same(field, self._sign("csrf", request.cookies.get(AUTH_COOKIE, "")))
        cookie = request.cookies.get(CSRF_COOKIE)
        return (
            cookie is not None and _RANDOM_43.fullmatch(cookie) is not None and _same(cookie, field)
        )


def foreign_origin(request: Request) -> bool:
    """Tell whether a request's ``Origin`` names another origin than its ``Host``. An absent
    Origin is not foreign (scripts and old browsers send none), nor is ``null``: browsers send
    that for the dashboard's own forms, whose pages have ``Referrer-Policy: no-referrer``."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return False
    return urlsplit(origin.lower()).netloc != request.headers.get("host", "").lower()


class Guard:
    """ASGI middleware in front of every dashboard route: access control and security headers.

    Args:
        app: the dashboard's routes.
        access: the credentials (token or none, cookie options).
        title: shown on the refusal pages.
    """

    def __init__(self, app: ASGIApp, access: Access, title: str) -> None:
        self.app = app
        self.access = access
        self.title = title

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
        token = self.access.token
        if token is None:
            client = scope.get("client")
            if not (client and is_loopback(str(client[0]))):
                return self._page(request, 403, "Forbidden", _render.REMOTE_REFUSED)
            # Behind a relay every client has a loopback peer: a relayed request is refused.
            if proxy_header(scope) is not None:
                return self._page(request, 403, "Forbidden", _render.PROXY_REFUSED)
            # A loopback peer with a foreign Host is a DNS-rebinding page in a local browser.
            host = request.headers.get("host")
            if host is not None and not is_loopback(_host_name(host)):
                return self._page(request, 403, "Forbidden", _render.HOST_REFUSED)
            scope[_SCOPE_KEY] = "loopback"
            return None
        authorization = request.headers.get("authorization", "")
        scheme, _, credential = authorization.partition(" ")
        if scheme.lower() == "bearer" and _same(credential.strip(), token):
            scope[_SCOPE_KEY] = "bearer"
            return None
        # Before the cookie: a token in the address is never left there.
        offered = request.query_params.get("token")
        if offered is not None and request.method in ("GET", "HEAD") and _same(offered, token):
            redirect = RedirectResponse(_without_token(scope), status_code=303)
            self.access.set_cookie(
                redirect,
                scope,
                AUTH_COOKIE,
                self.access.login_cookie(),
                max_age=self.access.login_ttl,
            )
            return redirect
        if self.access.login_valid(request.cookies.get(AUTH_COOKIE)):
            scope[_SCOPE_KEY] = "cookie"
            return None
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
