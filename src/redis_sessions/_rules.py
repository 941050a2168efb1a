"""The named decisions of a request, after express-session's (`shouldSave`, `shouldSetCookie`
...) and scs's: pure functions of the session, the cookie and the settings."""

from __future__ import annotations

from ._config import SessionConfig
from ._plans import Incoming, Plan, Write
from ._session import Session

__all__ = ["is_secure_request", "should_save", "should_set_cookie", "should_touch"]


def is_secure_request(scheme: str, forwarded_proto: str | None, *, trust_proxy: bool) -> bool:
    """Tell whether the request came over HTTPS (`X-Forwarded-Proto` only behind a trusted
    proxy; its first value is the client-facing hop)."""
    if trust_proxy and forwarded_proto:
        return forwarded_proto.split(",", 1)[0].strip().lower() == "https"
    return scheme in ("https", "wss")


def should_save(session: Session, changed: bool, config: SessionConfig) -> bool:
    """express-session's shouldSave: write when modified; a new unmodified session only with
    `save_uninitialized`; an existing unmodified one only with `resave`."""
    if changed:
        return True
    return config.save_uninitialized if session.is_new else config.resave


def should_touch(session: Session) -> bool:
    """Refresh the TTL of an unmodified existing session at the end of the request: only after
    `touch()`. With `rolling` the read itself already refreshed it (no `touch_after` limit),
    so a second command would be wasted."""
    return not session.is_new and session._touch


def should_set_cookie(
    plan: Plan, session: Session, incoming: Incoming, config: SessionConfig
) -> bool:
    """express-session's shouldSetCookie, for a session that is (still) stored.

    Set it for an id the client does not have yet, with `rolling`, after `touch()`, after a
    write of a persistent cookie (its expiry moved), or to re-sign with the first secret.
    """
    if session._id != incoming.session_id:
        return True  # a new id (new session, regenerate), possibly saved mid-request
    if config.rolling or session._touch or incoming.resign:
        return True
    return isinstance(plan, Write) and config.cookie.persist
