"""One way to show a Redis URL without its secrets, for every message, log line and page."""

from __future__ import annotations

import re

__all__ = ["redact_url"]

MASK = "***"
# Query options that carry a secret: password, sentinel_password, ssl_password, *token*, ...
_SECRET_NAME = re.compile(r"pass|secret|token", re.IGNORECASE)


def redact_url(url: str) -> str:
    """`url` with the password of its user info and of every secret query option masked.

    ``redis://u:pw@h:6379/0?sentinel_password=x&db=1`` gives
    ``redis://u:***@h:6379/0?sentinel_password=***&db=1``: user, hosts, path and the other
    options stay readable. The user info is everything before the last ``@`` that precedes the
    query, so an unencoded ``/`` in a password is masked too.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:  # no scheme: treat it all as the part after "://"
        scheme, rest = "", url
    head, question, query = rest.partition("?")
    userinfo, at, hosts = head.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        head = f"{user}:{MASK}@{hosts}" if colon else f"{user}@{hosts}"
    if question:
        query = "&".join(_masked_option(option) for option in query.split("&"))
    return f"{scheme}{sep}{head}{question}{query}"


def _masked_option(option: str) -> str:
    name, equals, _ = option.partition("=")
    return f"{name}={MASK}" if equals and _SECRET_NAME.search(name) else option
