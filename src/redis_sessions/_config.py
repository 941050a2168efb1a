"""Settings: `CookieConfig` and `SessionConfig`, frozen and validated at construction."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ._errors import ConfigError
from ._ids import is_well_formed, new_id
from ._signing import Signer

__all__ = ["CookieConfig", "SessionConfig"]

SameSite = Literal["lax", "strict", "none"]
Secure = Literal["auto"] | bool
Priority = Literal["low", "medium", "high"]
Unset = Literal["keep", "destroy"]
OnUnavailable = Literal["error", "anonymous"]

DAY = 86400.0
# Durations are sent to Redis in integer milliseconds: under 1 ms truncates to 0 (a delete, or
# an error), and Lua writes numbers of 1e14 or more as "1e+14", which Redis refuses.
MIN_SECONDS = 0.001
MAX_SECONDS = 10 * 365 * DAY
# RFC 6265 cookie-name: an RFC 2616 token (no controls, no separators, ASCII only).
_TOKEN = frozenset(chr(c) for c in range(0x21, 0x7F)) - set('()<>@,;:\\"/[]?={}')
# Path and domain attribute values: printable ASCII, never ';' (it would end the attribute).
_ATTRIBUTE = frozenset(chr(c) for c in range(0x20, 0x7F)) - {";"}


def _choice(option: str, value: object, allowed: Sequence[object]) -> None:
    if value not in allowed:
        shown = ", ".join(repr(a) for a in allowed)
        raise ConfigError(f"{option}: {value!r} is not one of {shown}")


def _positive(
    option: str, value: float | None, *, allow_none: bool = False, allow_zero: bool = False
) -> None:
    """Check a duration option: seconds from 1 ms to 10 years (0 too with `allow_zero`)."""
    if value is None and allow_none:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not ((value == 0 and allow_zero) or MIN_SECONDS <= value <= MAX_SECONDS)
    ):
        least = "0 or " if allow_zero else ""
        raise ConfigError(
            f"{option}: must be {least}from 0.001 to {MAX_SECONDS:.0f} seconds "
            f"(10 years), got {value!r}"
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class CookieConfig:
    """How the session cookie is written.

    Attributes:
        name: cookie name (default ``"session"``, as Starlette's middleware): RFC 6265 token
            characters. ``"__Host-session"`` is the hardened choice: browsers then accept
            the cookie only with Secure, ``Path=/`` and no Domain, so a sibling subdomain
            cannot plant or overwrite it (cookie tossing); those rules are checked here.
        path: cookie path (default ``"/"``), printable ASCII without ``;``.
        domain: cookie domain (default None: host-only), printable ASCII without ``;``,
            spaces or commas.
        persist: True (default) sends Max-Age/Expires equal to the session's remaining life;
            False makes a browser-session cookie (the server-side TTL still applies).
        http_only: HttpOnly attribute (default True).
        secure: True, False or ``"auto"`` (default): Secure when the request is HTTPS, where
            ``X-Forwarded-Proto`` counts only when `SessionConfig.trust_proxy` is set. With a
            ``__Host-`` or ``__Secure-`` name, ``"auto"`` means True (browsers drop such a
            cookie without Secure) and False is refused.
        same_site: ``"lax"`` (default), ``"strict"`` or ``"none"`` (needs `secure`).
        partitioned: Partitioned attribute, CHIPS (default False; needs `secure`).
        priority: Priority attribute: None (default), ``"low"``, ``"medium"``, ``"high"``.
    """

    name: str = "session"
    path: str = "/"
    domain: str | None = None
    persist: bool = True
    http_only: bool = True
    secure: Secure = "auto"
    same_site: SameSite = "lax"
    partitioned: bool = False
    priority: Priority | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or not _TOKEN.issuperset(self.name):
            raise ConfigError(
                f"cookie name: {self.name!r} is not a valid cookie name (RFC 6265 token characters)"
            )
        if (
            not isinstance(self.path, str)
            or not self.path.startswith("/")
            or not _ATTRIBUTE.issuperset(self.path)
        ):
            raise ConfigError(
                f"cookie path: {self.path!r} must start with '/' and hold "
                "printable ASCII without ';'"
            )
        if self.domain is not None and (
            not isinstance(self.domain, str)
            or not self.domain
            or not (_ATTRIBUTE - {" ", ","}).issuperset(self.domain)
        ):
            raise ConfigError(f"cookie domain: {self.domain!r} is not a valid domain")
        _choice("cookie secure", self.secure, ["auto", True, False])
        self._check_prefix()
        _choice("cookie same_site", self.same_site, ["lax", "strict", "none"])
        _choice("cookie priority", self.priority, [None, "low", "medium", "high"])
        if self.same_site == "none" and self.secure is False:
            raise ConfigError("cookie same_site: 'none' needs secure=True or 'auto'")
        if self.partitioned and self.secure is False:
            raise ConfigError("cookie partitioned: needs secure=True or 'auto'")

    def _check_prefix(self) -> None:
        # The cookie prefixes (RFC 6265bis 4.1.3; browsers match them case-insensitively): a
        # cookie that breaks their rules is silently dropped, so refuse the config instead.
        lowered = self.name.lower()
        host = lowered.startswith("__host-")
        if not host and not lowered.startswith("__secure-"):
            return
        prefix = self.name[: 7 if host else 9]
        if self.secure is False:
            raise ConfigError(f"cookie secure: a {prefix} cookie needs secure=True or 'auto'")
        if host and self.path != "/":
            raise ConfigError(f"cookie path: a {prefix} cookie needs path='/', not {self.path!r}")
        if host and self.domain is not None:
            raise ConfigError(
                f"cookie domain: a {prefix} cookie has no domain, not {self.domain!r}"
            )
        # 'auto' would leave Secure off over plain HTTP, where the browser drops the cookie.
        object.__setattr__(self, "secure", True)


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionConfig:
    """Every session setting the adapters share; build once, reuse across adapters.

    Attributes:
        secret: signing secret, or a list of them newest first (first signs, all verify).
            Each must be at least 16 bytes. Required.
        cookie: `CookieConfig` (defaults: HttpOnly, SameSite=Lax, Secure on HTTPS).
        idle_timeout: seconds of inactivity after which the session expires: the Redis key's
            TTL (default 86400, one day). A callable receives the session data and returns
            seconds, evaluated on each write (connect-redis's ``ttl`` function).
        lifetime: absolute lifetime in seconds from creation, whatever the activity (default
            30 days; None disables it). Wins over the idle extension.
        rolling: re-send the cookie and refresh the TTL on every response (default False).
        touch_after: without `rolling`, refresh the TTL on a read at most once per this many
            seconds (default 60; 0 refreshes on every read). A due refresh is part of the
            request's save, or one `PEXPIRE` at the end of a request that writes nothing.
        resave: write the session back even when it was not modified (default False).
        save_uninitialized: store a new session that was not modified (default False).
        unset: ``"keep"`` (default) saves a session emptied by the app as an empty session;
            ``"destroy"`` deletes it.
        genid: callable returning new session ids (default 256-bit random); its ids must be
            22-128 URL-safe base64 characters.
        trust_proxy: honour ``X-Forwarded-Proto`` for `secure="auto"` (default False).
        on_unavailable: ``"error"`` (default): answer 503 with Retry-After when Redis is down;
            ``"anonymous"``: serve the request with an empty session that is not saved.
        retry_after: seconds for the Retry-After header of that 503 (default 5).
        lock: serialize the requests of one session with a per-session lock in Redis (the
            PHP phpredis handler's idea): False (default), True (every request with a
            session cookie), a list of path prefixes (``["/checkout"]``), or a callable taking
            the request path. A locked request costs one more round trip at its end even when it
            writes nothing (the release).
        lock_timeout: how long a request waits for another request's lock, in seconds, before
            answering 503 naming the lock (default 5; 0 does not wait).
        lock_ttl: how long a lock lives, in seconds (default 10): a crashed worker cannot
            block a session for longer. A request that outlives it has its save refused (503),
            never silently written over the next holder's changes.
        lock_waiters: how many requests of one session may wait for its lock in one process
            (default 5: a browser's 6 connections per host, one of them holding the lock); the
            next ones answer the lock's 503 at once, without a Redis call, instead of taking a
            worker for up to `lock_timeout` each.
    """

    secret: str | bytes | Sequence[str | bytes]
    cookie: CookieConfig = field(default_factory=CookieConfig)
    idle_timeout: float | Callable[[Mapping[str, Any]], float] = DAY
    lifetime: float | None = 30 * DAY
    rolling: bool = False
    touch_after: float = 60.0
    resave: bool = False
    save_uninitialized: bool = False
    unset: Unset = "keep"
    genid: Callable[[], str] = new_id
    trust_proxy: bool = False
    on_unavailable: OnUnavailable = "error"
    retry_after: int = 5
    lock: bool | Sequence[str] | Callable[[str], bool] = False
    lock_timeout: float = 5.0
    lock_ttl: float = 10.0
    lock_waiters: int = 5

    def __post_init__(self) -> None:
        if not self.secret:
            raise ConfigError("secret: a secret (or a list of secrets) is required")
        try:
            Signer(self.secret)
        except (ValueError, TypeError) as exc:
            raise ConfigError(str(exc)) from None
        if not callable(self.idle_timeout):
            _positive("idle_timeout", self.idle_timeout)
        _positive("lifetime", self.lifetime, allow_none=True)
        _positive("touch_after", self.touch_after, allow_zero=True)
        _choice("unset", self.unset, ["keep", "destroy"])
        _choice("on_unavailable", self.on_unavailable, ["error", "anonymous"])
        if not isinstance(self.retry_after, int) or self.retry_after < 0:
            raise ConfigError(f"retry_after: must be an int >= 0, got {self.retry_after!r}")
        lock = self.lock
        if not (
            isinstance(lock, bool)
            or callable(lock)
            or (
                isinstance(lock, Sequence)
                and not isinstance(lock, str)
                and all(isinstance(p, str) for p in lock)
            )
        ):
            raise ConfigError(
                f"lock: must be a bool, a list of path prefixes or a callable, got {lock!r}"
            )
        _positive("lock_ttl", self.lock_ttl)
        _positive("lock_timeout", self.lock_timeout, allow_zero=True)
        if (
            isinstance(self.lock_waiters, bool)
            or not isinstance(self.lock_waiters, int)
            or self.lock_waiters < 1
        ):
            raise ConfigError(f"lock_waiters: must be an int >= 1, got {self.lock_waiters!r}")
        if self.genid is not new_id and not is_well_formed(self.genid()):
            raise ConfigError("genid: must return 22-128 URL-safe base64 characters")

    def wants_lock(self, path: str) -> bool:
        """Whether a request for `path` takes the session lock (see `lock`)."""
        lock = self.lock
        if isinstance(lock, bool):
            return lock
        if callable(lock):
            return bool(lock(path))
        return any(path.startswith(prefix) for prefix in lock)

    @classmethod
    def from_options(
        cls, config: SessionConfig | None, options: Mapping[str, Any]
    ) -> SessionConfig:
        """Build a config from keyword options, over `config` when given.

        Cookie options may be passed flat (``same_site="strict"``) or as ``cookie=``. The
        Starlette names ``secret_key``, ``session_cookie``, ``max_age`` and ``https_only`` are
        accepted so the ASGI middleware is a drop-in for Starlette's, and ``secret_key`` (the
        Starlette spelling of the one required option) brings Starlette's behaviour for what
        the call does not set (`STARLETTE_DEFAULTS`): 14 days of inactivity, the cookie
        re-sent on every response (``rolling``), an emptied session deleted (``unset``), and
        an absolute `lifetime` never shorter than ``max_age``.
        """
        opts = dict(options)
        for old, new in _ALIASES.items():
            if old in opts and new in opts:
                raise ConfigError(f"{old}: give {old} or {new}, not both")
        starlette = config is None and "secret_key" in opts
        if "max_age" in opts:
            max_age = opts["max_age"]
            if max_age is not None and (
                isinstance(max_age, bool) or not isinstance(max_age, (int, float)) or max_age <= 0
            ):
                raise ConfigError(
                    f"max_age: must be a positive number of seconds or None "
                    f"(a browser-session cookie), got {max_age!r}"
                )
        if "https_only" in opts and not isinstance(opts["https_only"], bool):
            raise ConfigError(f"https_only: must be True or False, got {opts['https_only']!r}")
        for old, new in _ALIASES.items():
            if old in opts:
                opts[new] = opts.pop(old)
        cookie_fields = {f.name for f in dataclasses.fields(CookieConfig)}
        cookie_opts = {k: opts.pop(k) for k in list(opts) if k in cookie_fields}
        if "https_only" in opts:
            # Starlette's False means "not forced": Secure exactly when the request is HTTPS.
            cookie_opts["secure"] = True if opts.pop("https_only") else "auto"
        if "idle_timeout" in opts and opts["idle_timeout"] is None:
            # Starlette's max_age=None means a browser-session cookie.
            opts.pop("idle_timeout")
            cookie_opts["persist"] = False
        if starlette:
            for option, value in STARLETTE_DEFAULTS.items():
                opts.setdefault(option, value)
            idle = opts["idle_timeout"]
            if "lifetime" not in opts and isinstance(idle, (int, float)):
                opts["lifetime"] = max(30 * DAY, float(idle))
        try:
            if config is None:
                base_cookie = opts.pop("cookie", None) or CookieConfig()
                cookie = dataclasses.replace(base_cookie, **cookie_opts)
                return cls(cookie=cookie, **opts)
            cookie = dataclasses.replace(opts.pop("cookie", config.cookie), **cookie_opts)
            return dataclasses.replace(config, cookie=cookie, **opts)
        except TypeError as exc:
            raise ConfigError(str(exc)) from None


# Starlette's option names and the options they set (`SessionConfig.from_options`).
_ALIASES = {"secret_key": "secret", "max_age": "idle_timeout", "session_cookie": "name"}

# What Starlette's SessionMiddleware does where ours defaults otherwise, applied when the call
# uses Starlette's spelling (``secret_key=``) and does not set the option itself.
STARLETTE_DEFAULTS: Mapping[str, Any] = {
    "idle_timeout": 14 * DAY,  # Starlette's max_age default
    "rolling": True,  # Starlette re-sends the cookie on every response: max_age slides
    "unset": "destroy",  # Starlette's session.clear() drops the session and its cookie
}
