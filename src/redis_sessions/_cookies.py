"""Reading our cookie from a Cookie header and rendering Set-Cookie values (pure functions)."""

from __future__ import annotations

import functools
import time
from email.utils import formatdate

__all__ = ["cookie_values", "render_cookie"]

# Work on a Cookie header is bounded: only this many characters are looked at, and only this
# many cookies of our name are tried, so a 1 MiB header costs the same as an 8 KiB one.
MAX_HEADER_SCAN = 8192
MAX_CANDIDATES = 4


def cookie_values(header: str | None, name: str) -> list[str]:
    """Return the values of cookie `name` in a Cookie header, in order, at most 4.

    Browsers send the cookie with the most specific path first, so the first one that verifies
    wins. Quoted values are unquoted; everything else is returned verbatim and left to the
    signature check to reject.
    """
    if not header:
        return []
    found: list[str] = []
    for part in header[:MAX_HEADER_SCAN].split(";"):
        key, sep, value = part.partition("=")
        if sep and key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            found.append(value)
            if len(found) == MAX_CANDIDATES:
                break
    return found


def render_cookie(
    name: str,
    value: str,
    *,
    path: str = "/",
    domain: str | None = None,
    max_age: int | None = None,
    http_only: bool = True,
    secure: bool = False,
    same_site: str | None = "lax",
    partitioned: bool = False,
    priority: str | None = None,
    now: float | None = None,
) -> str:
    """Render a Set-Cookie header value.

    `max_age` None makes a browser-session cookie; 0 or less deletes the cookie (with an
    Expires in 1970 for old clients). Expires is always written next to Max-Age.
    """
    parts = [f"{name}={value}", f"Path={path}"]
    if domain:
        parts.append(f"Domain={domain}")
    if max_age is not None:
        if max_age <= 0:
            parts.append("Max-Age=0")
            parts.append("Expires=Thu, 01 Jan 1970 00:00:00 GMT")
        else:
            parts.append(f"Max-Age={max_age}")
            when = (time.time() if now is None else now) + max_age
            parts.append("Expires=" + _http_date(int(when)))
    if http_only:
        parts.append("HttpOnly")
    if secure:
        parts.append("Secure")
    if same_site:
        parts.append("SameSite=" + same_site.capitalize())
    if partitioned:
        parts.append("Partitioned")
    if priority:
        parts.append("Priority=" + priority.capitalize())
    return "; ".join(parts)


@functools.lru_cache(maxsize=64)
def _http_date(when: int) -> str:
    # The same second recurs across the responses of a busy server: format it once.
    return formatdate(when, usegmt=True)
