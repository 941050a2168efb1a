"""Session ids and the handles they are stored under.

A session id is 256 bits from `secrets`, URL-safe base64 (43 characters). Redis never sees it:
the store key is derived from a SHA-256 of the id (the *handle*), so a Redis dump, `MONITOR`
output or the slow log cannot be replayed as a cookie.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

__all__ = ["handle_for", "is_well_formed", "new_id"]

# Ids from a custom `genid` must still match this shape: it is checked before any Redis call.
_ID_SHAPE = re.compile(r"[A-Za-z0-9_-]{22,128}")


def new_id() -> str:
    """Return a fresh 256-bit session id (43 URL-safe characters)."""
    return secrets.token_urlsafe(32)


def is_well_formed(session_id: str) -> bool:
    """Tell whether `session_id` has the shape of an id: 22-128 URL-safe base64 characters."""
    return _ID_SHAPE.fullmatch(session_id) is not None


def handle_for(session_id: str) -> str:
    """Return the storage handle of `session_id`: URL-safe base64 of its SHA-256, unpadded."""
    digest = hashlib.sha256(session_id.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
