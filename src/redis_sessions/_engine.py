"""The sans-IO session engine: every decision, no I/O.

`SessionEngine` is the per-app object (config, signer, the verified-cookie cache). Each
request gets one `RequestCycle` from `SessionEngine.begin` (see `_cycle.py`), which holds that
request's state and is driven by a few verbs while the adapter performs the I/O they ask for.
The methods here are the decisions the cycle delegates to: verify the cookie, say what to
read, open the session from the reply, plan the write, record its result, render the headers.

The decisions follow express-session (`resave`, `save_uninitialized`, `rolling`, `unset`) and
scs (idle timeout plus absolute lifetime); each is a named function below.
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ._config import SessionConfig
from ._cookies import cookie_values, render_cookie
from ._errors import ConfigError
from ._ids import handle_for, is_well_formed
from ._plans import (
    Committed,
    Destroy,
    Incoming,
    Load,
    Loaded,
    Plan,
    Release,
    Touch,
    Write,
)
from ._record import CREATED, IDLE_TTL, check_size, decode_record, field_name, key_of, size_of
from ._rules import should_save, should_set_cookie, should_touch
from ._serializers import Serializer
from ._session import Session
from ._signing import Signer

if TYPE_CHECKING:
    from ._cycle import RequestCycle

__all__ = ["SessionEngine", "now_ms"]

logger = logging.getLogger("redis_sessions")

# Sent with every Set-Cookie of a session: no shared cache may store that response.
CACHE_CONTROL = 'private, no-cache="Set-Cookie"'
SPARES = 2  # spare ids sent with the write of a new session


NO_COOKIE = Incoming()


def now_ms() -> int:
    """Wall-clock time in integer milliseconds (what session metadata stores)."""
    return int(time.time() * 1000)


_wall_ms = now_ms  # for the methods whose `now_ms` parameter hides it


class SessionEngine:
    """All session decisions for one `SessionConfig` and one serializer.

    Args:
        config: the settings.
        serializer: encodes each top-level value (the store's serializer).
        max_size: limit in bytes of a serialized session (field names plus values).
    """

    __slots__ = (
        "_callable_ttl",
        "_idle_ms",
        "_lifetime_ms",
        "_verify",
        "config",
        "max_size",
        "serializer",
        "signer",
    )

    def __init__(self, config: SessionConfig, *, serializer: Serializer, max_size: int) -> None:
        self.config = config
        self.serializer = serializer
        self.max_size = max_size
        self.signer = Signer(config.secret)
        self._callable_ttl = callable(config.idle_timeout)
        idle = config.idle_timeout
        self._idle_ms = 0 if callable(idle) else int(idle * 1000)
        self._lifetime_ms = int(config.lifetime * 1000) if config.lifetime else 0
        # Verifying a cookie (HMAC, then SHA-256 for the handle) is most of read_cookie's time
        # and a client sends the same cookie again and again: remember the outcome for the last
        # 4096 values (bounded whatever a client sends; a secret rotation builds a new engine).
        self._verify = functools.lru_cache(maxsize=4096)(self._verify_value)

    # -- the request cycle ------------------------------------------------------------------

    def begin(
        self,
        cookie_header: str | None,
        *,
        secure: bool,
        path: str | None = None,
        now_ms: int | None = None,
        session: Session | None = None,
    ) -> RequestCycle:
        """Start one request: verify its cookie and say what to read (`RequestCycle.load`).

        Args:
            cookie_header: the request's ``Cookie`` header (all of them joined by ``"; "``).
            secure: the request came over HTTPS (`is_secure_request`).
            path: the request path, for the ``lock`` option's routes (None: no lock).
            now_ms: the request's time (default: now).
            session: the (empty) `Session` to fill, when the adapter needs its own subclass.
        """
        from ._cycle import RequestCycle

        now = _wall_ms() if now_ms is None else now_ms
        incoming = self.read_cookie(cookie_header)
        config = self.config
        lock = path is not None and bool(config.lock) and config.wants_lock(path)
        load = self.load_spec(incoming, now, lock=lock)
        if session is None:
            session = self.new_session(now)
        return RequestCycle(self, incoming, load, secure, session, now)

    # -- 1. the cookie ----------------------------------------------------------------------

    def read_cookie(self, header: str | None) -> Incoming:
        """Find and verify our cookie in a Cookie header value. Never raises, never does I/O."""
        values = cookie_values(header, self.config.cookie.name)
        if not values:
            return NO_COOKIE
        for value in values:
            incoming = self._verify(value)
            if incoming is not None:
                return incoming
        return Incoming(cookie_present=True)

    def _verify_value(self, value: str) -> Incoming | None:
        verified = self.signer.unsign(value)
        if verified is None or not is_well_formed(verified[0]):
            return None
        sid, index = verified
        return Incoming(sid, handle_for(sid), True, index > 0, value)

    # -- 2. loading -------------------------------------------------------------------------

    def load_spec(self, incoming: Incoming, now_ms: int, *, lock: bool = False) -> Load | None:
        """What to read for this request: None when there is no verified cookie. With `lock`,
        the read takes the session's lock (see `SessionConfig.lock`)."""
        if incoming.handle is None:
            return None
        touch_after = 0 if self.config.rolling else int(self.config.touch_after * 1000)
        if not lock:
            return Load(
                handle=incoming.handle,
                now_ms=now_ms,
                idle_ms=self._idle_ms,
                lifetime_ms=self._lifetime_ms,
                touch_after_ms=touch_after,
            )
        config = self.config
        return Load(
            handle=incoming.handle,
            now_ms=now_ms,
            idle_ms=self._idle_ms,
            lifetime_ms=self._lifetime_ms,
            touch_after_ms=touch_after,
            lock=secrets.token_hex(8),
            lock_ttl_ms=int(config.lock_ttl * 1000),
            lock_wait_ms=int(config.lock_timeout * 1000),
            lock_waiters=config.lock_waiters,
        )

    def new_session(self, now_ms: int) -> Session:
        """A fresh, empty, unsaved session."""
        return Session(genid=self.new_id, created_ms=now_ms)

    def new_id(self) -> str:
        """A new session id from `genid`, checked (every one: a custom genid may go wrong
        after the check at configuration time)."""
        sid = self.config.genid()
        if not isinstance(sid, str) or not is_well_formed(sid):
            raise ConfigError(f"genid: returned {sid!r:.60}, not 22-128 URL-safe base64 characters")
        return sid

    def _spares(self) -> tuple[tuple[str, str], ...]:
        # Candidates for a new session in case its id is taken (never, with the default
        # genid): the store takes the first free one in the same command.
        return tuple((sid, handle_for(sid)) for sid in (self.new_id() for _ in range(SPARES)))

    def open_session(self, incoming: Incoming, reply: Loaded | None, now_ms: int) -> Session:
        """The session for a request, from the store's reply to `load_spec`."""
        session = self.new_session(now_ms)
        self.fill(session, incoming, reply, now_ms)
        return session

    def fill(self, session: Session, incoming: Incoming, reply: Loaded | None, now_ms: int) -> None:
        """(Re)initialise `session` in place from a load reply, dropping unsaved changes.

        A missing, foreign, corrupt or expired stored session gives a new empty session with
        a new id: an id the server does not hold is never adopted (session fixation). A
        corrupt payload is logged once with a short hash of the handle, never the id.
        """
        session._restore(None, now_ms=now_ms)
        if reply is None or incoming.handle is None:
            return
        if reply.foreign:
            logger.warning(
                "session %s: key holds a foreign Redis type; starting a new session",
                incoming.handle[:12],
            )
            return
        try:
            record = decode_record(reply.fields, self.serializer, self.max_size)
        except ValueError as exc:
            logger.warning(
                "session %s: unreadable stored payload (%s); starting a new session",
                incoming.handle[:12],
                str(exc)[:200],
            )
            return
        if self._lifetime_ms and now_ms >= record.created_ms + self._lifetime_ms:
            return
        session._restore(
            record,
            now_ms=now_ms,
            sid=incoming.session_id,
            handle=incoming.handle,
            ttl_ms=reply.pttl_ms,
            refresh_ms=reply.refresh_ms,
        )

    # -- 3. saving --------------------------------------------------------------------------

    def ttl_ms(self, session: Session, now_ms: int) -> int:
        """The TTL to set on a write: the idle timeout, capped by what is left of the
        absolute lifetime (<= 0 means the session is over)."""
        idle = self._idle_ms
        if self._callable_ttl:
            data = dict(dict.items(session))  # a copy: the callable's reads are not the app's
            idle = int(self.config.idle_timeout(data) * 1000)  # type: ignore[operator]
        if self._lifetime_ms:
            return min(idle, session._created_ms + self._lifetime_ms - now_ms)
        return idle

    def _changed(self, session: Session, everything: bool) -> dict[str, bytes]:
        """Serialized values to write: set keys and read dicts/lists whose bytes differ."""
        # The dict's own methods: reading through Session's would count as the app's reads.
        stored = dict.keys(session)
        keys = (
            stored
            if everything
            else (
                (session._set | session._accessed) & stored - session._incr.keys() - session._setnx
            )
        )
        dumps, raw, get = self.serializer.dumps, session._raw, dict.__getitem__
        changed = {}
        for key in keys:
            value = dumps(get(session, key))
            if everything or (value != raw.get(key) and not self._same(raw.get(key), value)):
                changed[field_name(key)] = value
        return changed

    def _same(self, stored: bytes | None, value: bytes) -> bool:
        """Whether `stored` (bytes from Redis that differ from `value`) decodes to the same
        value: bytes written by another serializer setting (stdlib json vs orjson, say) must
        not turn a read into a write."""
        if not stored:  # b"" marks a key forced by mark_modified()
            return False
        try:
            return self.serializer.dumps(self.serializer.loads(stored)) == value
        except (ValueError, TypeError):
            return False

    def _check_size(self, session: Session, changed: Mapping[str, bytes], full: bool) -> None:
        size = size_of(changed)
        if not full:  # the stored fields this write keeps count too
            kept = {
                name: value
                for key, value in session._raw.items()
                if (name := field_name(key)) not in changed and dict.__contains__(session, key)
            }
            size += size_of(kept)
        check_size(size, self.max_size)

    def plan(self, session: Session, now_ms: int) -> Plan:
        """Decide what to write now. Raises `SessionTooLargeError` (nothing is written) when
        the session is over `max_size`."""
        if session._loader is not None:
            return None  # never looked at: nothing can have changed
        old = session._handle
        if old and not (
            session._set
            or session._deleted
            or session._accessed
            or session._incr
            or session._setnx
            or session._regenerated
            or session._whole
            or session._destroyed
            or session._touch
            or session._refresh_ms
            or self.config.resave
        ):
            return None  # a plain read: the common case, decided without the steps below
        if session._destroyed:
            return Destroy(handle=old) if old else None
        if (
            self.config.unset == "destroy"
            and old
            and session._deleted
            and not dict.__len__(session)
        ):
            return Destroy(handle=old)
        full = old is None or session._whole
        changed = self._changed(session, full)
        incr: tuple[tuple[str, int], ...] = ()
        setnx: tuple[tuple[str, bytes], ...] = ()
        if not full:
            incr = tuple((field_name(k), by) for k, by in session._incr.items() if by)
            dumps = self.serializer.dumps
            get = dict.__getitem__
            setnx = tuple((field_name(k), dumps(get(session, k))) for k in session._setnx)
        modified = bool(session._deleted or incr or setnx) or (
            bool(changed) if old else dict.__len__(session) > 0
        )
        if session._regenerated and old:
            modified = True
        ttl = self.ttl_ms(session, now_ms)
        if not should_save(session, modified, self.config):
            if should_touch(session) and old:
                return Touch(handle=old, ttl_ms=ttl) if ttl > 0 else Destroy(handle=old)
            if session._refresh_ms and old:
                return Touch(handle=old, ttl_ms=session._refresh_ms, best_effort=True)
            return None
        if ttl <= 0:
            return (
                Destroy(handle=old) if old else None
            )  # connect-redis: an expired save is a delete
        if self.config.resave and not full and not changed and not incr and not setnx:
            changed = self._changed(session, True)
        self._check_size(session, {**changed, **dict(setnx)}, full)
        if self._callable_ttl:
            changed[IDLE_TTL] = str(ttl).encode()
        if full:
            changed[CREATED] = str(session._created_ms).encode()
        if old is None:
            return Write(
                handle=handle_for(session.id),
                fields=changed,
                ttl_ms=ttl,
                create=True,
                spare=self._spares(),
            )
        deleted = tuple(field_name(k) for k in session._deleted)
        # Increments are not idempotent: a nonce lets the store apply a re-sent write once.
        nonce = secrets.token_hex(8) if incr else None
        if session._regenerated:
            # The stored session moves to the new id with this request's changes on top, so
            # what concurrent requests wrote to it meanwhile is not lost.
            return Write(
                handle=handle_for(session.id),
                fields=changed,
                delete=deleted,
                ttl_ms=ttl,
                create=True,
                regenerated_from=old,
                incr=incr,
                setnx=setnx,
                nonce=nonce,
                spare=self._spares(),
            )
        return Write(
            handle=old,
            fields=changed,
            delete=deleted,
            ttl_ms=ttl,
            create=False,
            incr=incr,
            setnx=setnx,
            nonce=nonce,
        )

    def committed(self, session: Session, plan: Plan, result: Committed) -> None:
        """Record that `plan` was run: the session's baseline becomes what was written."""
        match plan:
            case Release():
                return
            case _ if not result.applied:
                session._lost()
            case Destroy():
                session._gone()
            case Write():
                written = {
                    key: value
                    for name, value in plan.fields.items()
                    if (key := key_of(name)) is not None
                }
                session._stored(
                    written,
                    self._computed(result.values),
                    handle=result.taken[1] if result.taken else plan.handle,
                    sid=result.taken[0] if result.taken else None,
                    ttl_ms=plan.ttl_ms,
                )
            case Touch():
                session._touched(plan.ttl_ms)
            case None:
                session._forget_changes()

    def _computed(self, values: Mapping[str, bytes]) -> dict[str, tuple[object, bytes]]:
        # What Redis holds after HINCRBY / HSETNX: other requests' changes included.
        computed = {}
        for name, value in values.items():
            key = key_of(name)
            if key is None:
                continue
            try:
                computed[key] = (self.serializer.loads(value), value)
            except ValueError:
                continue  # changed meanwhile into something else: keep our value
        return computed

    # -- 4. the response --------------------------------------------------------------------

    def response_headers(
        self, session: Session, incoming: Incoming, plan: Plan, result: Committed, secure: bool
    ) -> list[tuple[str, str]]:
        """Headers to add to the response: Set-Cookie plus ``Vary: Cookie`` and
        ``Cache-Control: private, no-cache="Set-Cookie"`` whenever a cookie is set.

        ``private`` forbids every shared cache to store the response (RFC 9111 5.2.2.7),
        which a CDN honours even where it ignores the qualified ``no-cache="Set-Cookie"``
        (RFC 9111 5.2.2.4: often handled as a plain ``no-cache``, which lets a cache store
        the response and its cookie, then replay both after a revalidation). It is a field
        line of its own: beside an app's ``public, max-age=...`` the combined list holds
        both, and a cache that sees ``private`` does not store.
        """
        cookie = self.config.cookie
        if not result.applied:
            # Gone meanwhile: a logout (whose response cleared the cookie) or a login elsewhere
            # (whose response set a new one). Sending nothing leaves the browser's newest.
            return []
        if session._destroyed or isinstance(plan, Destroy):
            if not incoming.cookie_present:
                return []
            value = self._render("", 0, secure)  # logout
        elif session._loader is not None or session._handle is None:
            return []  # not loaded, or a new session that was not stored
        elif should_set_cookie(plan, session, incoming, self.config):
            ttl_ms = plan.ttl_ms if isinstance(plan, (Write, Touch)) else session._ttl_ms
            max_age = -(-ttl_ms // 1000) if cookie.persist and ttl_ms > 0 else None
            signed = incoming.value
            if session._id != incoming.session_id or incoming.resign or signed is None:
                signed = self.signer.sign(session.id)
            value = self._render(signed, max_age, secure)
        else:
            return []
        return [
            ("set-cookie", value),
            ("vary", "Cookie"),
            ("cache-control", CACHE_CONTROL),
        ]

    def _render(self, value: str, max_age: int | None, secure: bool) -> str:
        c = self.config.cookie
        return render_cookie(
            c.name,
            value,
            path=c.path,
            domain=c.domain,
            max_age=max_age,
            http_only=c.http_only,
            secure=secure if c.secure == "auto" else c.secure,
            same_site=c.same_site,
            partitioned=c.partitioned,
            priority=c.priority,
        )
