"""Django session engine: ``SESSION_ENGINE = "redis_sessions.django"``.

Django's `SessionMiddleware` keeps its cookie (``sessionid``, `SESSION_COOKIE_*` settings) and
its decisions (save when modified, `SESSION_SAVE_EVERY_REQUEST`, delete the cookie of an
emptied session); this module only stores the data, in this package's layout:

- one Redis hash per session at ``{prefix}{<handle>}``, where the handle is the SHA-256 of
  Django's session key, so Redis never holds a usable cookie value;
- each top-level key is one field (JSON, or msgpack), ``$c`` the creation time;
- a save writes only the keys whose serialized value changed since the load, atomically, and
  refuses to bring back a session deleted meanwhile (Django's `UpdateError`);
- `cycle_key()` (called by ``django.contrib.auth.login()``) writes the data under a new key and
  deletes the old one in one atomic step;
- the key's TTL is `get_expiry_age()` (`SESSION_COOKIE_AGE`, or `set_expiry()`), set on each
  save, as Django's database backend sets ``expire_date``.

Settings: ``REDIS_SESSIONS = {"url": ..., "prefix": "sess:", "serializer": "json", ...}`` (see
`options_from_settings`). Redis errors are never a silent logout: a load, `flush()` or
`cycle_key()` raises `StoreUnavailableError`, a save raises Django's `SessionInterrupted`, and
`StoreUnavailableMiddleware` turns both into ``503`` with ``Retry-After``.

Async code (``await request.session.aget(...)``, ``alogin()``) runs on an `AsyncRedisStore`
of the running event loop; the middleware's own save is sync and uses a `RedisStore`.

The settings and the stores built from them are in `redis_sessions.django._settings`, the
middleware in `redis_sessions.django.middleware`; both are re-exported here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.contrib.sessions.backends.base import (
    CreateError,
    SessionBase,
    UpdateError,
)
from django.contrib.sessions.exceptions import (
    SessionInterrupted,
)

from .._engine import now_ms
from .._errors import StoreUnavailableError, degrades
from .._ids import handle_for, is_well_formed, new_id
from .._plans import Destroy, Load, Loaded, Plan, Touch, Write
from .._record import Record, check_size, decode_record, field_name, fields_of, size_of
from ._settings import (
    DjangoOptions,
    _backend,
    aclose_async_store,
    close_stores,
    get_async_store,
    get_store,
    options_from_settings,
)

__all__ = [
    "DjangoOptions",
    "SessionStore",
    "StoreUnavailableMiddleware",
    "aclose_async_store",
    "close_stores",
    "get_async_store",
    "get_store",
    "options_from_settings",
]

logger = logging.getLogger("redis_sessions")

_INTERRUPTED = (
    "The session store is unavailable; the session could not be saved. Please retry shortly."
)
# Django's own backends try this many fresh keys before giving up on a create.
_CREATE_ATTEMPTS = 100
_CREATE_FAILED = "Unable to create a new session key: the key generator keeps repeating keys."


class SessionStore(SessionBase):  # type: ignore[misc]
    """Django's `SessionBase` on Redis. Each I/O method has its ``a``-prefixed asyncio twin.

    Round trips: a read is 1 (no TTL refresh: as with Django's other backends the expiry moves
    on save), a save of changed keys 1, a save of nothing changed 1 (the TTL), a session that
    is never accessed 0. Session keys are 256-bit random (43 URL-safe characters); a cookie
    that is not of that shape is ignored without a Redis call.
    """

    # Set by SessionBase (a property and a lazily created dict); annotated for the type checker.
    _session_key: str | None
    _session_cache: dict[str, Any]

    def __init__(self, session_key: str | None = None) -> None:
        # Settings are checked (pickle refused) before Django imports SESSION_SERIALIZER.
        self._redis = _backend()
        self._stored: str | None = None  # handle of the stored copy this object mirrors
        self._raw: dict[str, bytes] = {}  # serialized values as stored: the delta's baseline
        self._created_ms = 0
        self._fresh = False  # cycle_key() just wrote data and TTL: the next save may skip both
        self._degraded = False  # Redis was down at load and on_unavailable="anonymous"
        # A save failed: StoreUnavailableMiddleware answers 503 (the error names why).
        self._unavailable: StoreUnavailableError | None = None
        super().__init__(session_key)

    # -- keys -------------------------------------------------------------------------------

    def _validate_session_key(self, key: object) -> bool:
        return isinstance(key, str) and is_well_formed(key)

    def _get_new_session_key(self) -> str:
        # 256 random bits never collide: no exists() round trip, unlike Django's base class.
        return new_id()

    async def _aget_new_session_key(self) -> str:
        return new_id()

    # -- load -------------------------------------------------------------------------------

    def _load_spec(self, key: str) -> Load:
        # idle 0, lifetime 0: read only, the TTL is Django's expiry, set at save time.
        return Load.read_only(handle_for(key), now_ms())

    def _degrade(self, exc: StoreUnavailableError) -> dict[str, Any]:
        if not degrades(exc, self._redis.options.on_unavailable):
            raise exc
        self._degraded = True  # keep the client's key: its session may well still exist
        return {}

    def _decode(self, handle: str, reply: Loaded | None) -> Record | None:
        if reply is None:
            return None
        if reply.foreign:
            logger.warning(
                "session %s: key holds a foreign Redis type; starting a new session", handle[:12]
            )
            return None
        try:
            return decode_record(
                reply.fields, self._redis.options.serializer, self._redis.options.max_size
            )
        except ValueError as exc:
            logger.warning(
                "session %s: unreadable stored payload (%s); starting a new session",
                handle[:12],
                str(exc)[:200],
            )
            return None

    def _opened(self, key: str, reply: Loaded | None) -> dict[str, Any]:
        handle = handle_for(key)
        record = self._decode(handle, reply)
        if record is None:
            # Never adopt a key the server does not hold (session fixation): the next save
            # creates a new one, as Django's own backends do.
            self._session_key = None
            self._stored, self._raw = None, {}
            return {}
        self._stored, self._raw, self._created_ms = handle, record.raw, record.created_ms
        return record.data

    def load(self) -> dict[str, Any]:
        """Read the session (1 round trip). A missing, expired, corrupt or foreign one gives
        an empty session whose key is dropped, so the next save creates a new key."""
        key = self.session_key
        if key is None:
            return {}
        try:
            reply = self._redis.store.load(self._load_spec(key))
        except StoreUnavailableError as exc:
            return self._degrade(exc)
        return self._opened(key, reply)

    async def aload(self) -> dict[str, Any]:
        """The asyncio twin of `load`."""
        key = self.session_key
        if key is None:
            return {}
        try:
            reply = await self._redis.async_store().load(self._load_spec(key))
        except StoreUnavailableError as exc:
            return self._degrade(exc)
        return self._opened(key, reply)

    def exists(self, session_key: str) -> bool:
        """Whether a readable session is stored under `session_key` (1 round trip; none for a
        key that is not of the right shape)."""
        if not self._validate_session_key(session_key):
            return False
        spec = self._load_spec(session_key)
        return self._decode(spec.handle, self._redis.store.load(spec)) is not None

    async def aexists(self, session_key: str) -> bool:
        """The asyncio twin of `exists`."""
        if not self._validate_session_key(session_key):
            return False
        spec = self._load_spec(session_key)
        return self._decode(spec.handle, await self._redis.async_store().load(spec)) is not None

    # -- save -------------------------------------------------------------------------------

    def _encode(self, data: Mapping[str, Any]) -> dict[str, bytes]:
        dumps = self._redis.options.serializer.dumps
        encoded = {}
        for key, value in data.items():
            if not isinstance(key, str):
                raise TypeError(f"session keys must be str, not {type(key).__name__}")
            encoded[key] = dumps(value)
        check_size(size_of(fields_of(encoded)), self._redis.options.max_size)
        return encoded

    def _ttl_ms(self, data: Mapping[str, Any]) -> int:
        return int(self.get_expiry_age(expiry=data.get("_session_expiry")) * 1000)

    def _plan_save(
        self, data: Mapping[str, Any], must_create: bool
    ) -> tuple[Plan, dict[str, bytes]]:
        handle = handle_for(self.session_key)
        if must_create and self._stored == handle:
            raise CreateError
        ttl = self._ttl_ms(data)
        encoded = self._encode(data)
        if self._stored != handle:
            # Not stored under this key by this object: write everything. Without
            # must_create the write applies only if the key exists (UpdateError otherwise).
            if ttl <= 0:
                return None, encoded
            fields = fields_of(encoded, created_ms=self._created_ms or now_ms())
            return Write(handle=handle, fields=fields, ttl_ms=ttl, create=must_create), encoded
        if ttl <= 0:
            return Destroy(handle=handle), encoded  # its set_expiry() date has passed
        raw = self._raw
        changed = {field_name(k): v for k, v in encoded.items() if raw.get(k) != v}
        deleted = tuple(field_name(k) for k in raw if k not in encoded)
        if changed or deleted:
            return (
                Write(handle=handle, fields=changed, delete=deleted, ttl_ms=ttl, create=False),
                encoded,
            )
        if self._fresh:
            return None, encoded  # cycle_key() wrote exactly this a moment ago
        return Touch(handle=handle, ttl_ms=ttl), encoded

    def _saved(self, plan: Plan, encoded: dict[str, bytes], applied: bool) -> None:
        self._fresh = False
        if not applied:
            self._stored, self._raw = None, {}
            if isinstance(plan, Write) and plan.create:
                raise CreateError  # the key exists already: never write into another session
            # Deleted meanwhile (a logout in another request): never resurrect it. Django's
            # middleware turns this into SessionInterrupted.
            raise UpdateError
        if isinstance(plan, Destroy):
            self._stored, self._raw = None, {}
        elif isinstance(plan, Write):
            self._stored, self._raw = plan.handle, encoded

    def _interrupted(self, error: StoreUnavailableError) -> SessionInterrupted:
        self._unavailable = error
        return SessionInterrupted(_INTERRUPTED)

    def save(self, must_create: bool = False) -> None:
        """Write the session: only the changed keys of a loaded session, everything for a new
        one (1 round trip). Raises `UpdateError` when the session was deleted meanwhile,
        `SessionInterrupted` when Redis is unavailable."""
        if self.session_key is not None:
            data = self._get_session(no_load=must_create)
        if self.session_key is None:  # new, or the load found nothing: never the client's key
            self.create()
            return
        if self._degraded:
            return  # an anonymous session served while Redis was down is never saved
        plan, encoded = self._plan_save(data, must_create)
        try:
            applied = self._redis.store.commit(plan).applied
        except StoreUnavailableError as exc:
            raise self._interrupted(exc) from exc
        self._saved(plan, encoded, applied)

    async def asave(self, must_create: bool = False) -> None:
        """The asyncio twin of `save`."""
        if self.session_key is not None:
            data = await self._aget_session(no_load=must_create)
        if self.session_key is None:
            await self.acreate()
            return
        if self._degraded:
            return
        plan, encoded = self._plan_save(data, must_create)
        try:
            applied = (await self._redis.async_store().commit(plan)).applied
        except StoreUnavailableError as exc:
            raise self._interrupted(exc) from exc
        self._saved(plan, encoded, applied)

    def _new_key(self) -> None:
        self._session_key = self._get_new_session_key()
        self._stored, self._raw, self._fresh = None, {}, False
        self._created_ms = now_ms()

    def create(self) -> None:
        """Give the session a new key and store it (with its current data, empty for a new
        session) before returning (1 round trip). A key that exists already (a custom
        `_get_new_session_key` may repeat one) is never written into: another key is tried, as
        Django's own backends do."""
        for _ in range(_CREATE_ATTEMPTS):
            self._new_key()
            try:
                self.save(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise RuntimeError(_CREATE_FAILED)

    async def acreate(self) -> None:
        """The asyncio twin of `create`."""
        for _ in range(_CREATE_ATTEMPTS):
            self._new_key()
            try:
                await self.asave(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return
        raise RuntimeError(_CREATE_FAILED)

    # -- delete, cycle_key ------------------------------------------------------------------

    def _delete_target(self, session_key: str | None) -> str | None:
        key = self.session_key if session_key is None else session_key
        return handle_for(key) if self._validate_session_key(key) else None

    def _deleted(self, handle: str) -> None:
        if handle == self._stored:
            self._stored, self._raw, self._fresh = None, {}, False

    def delete(self, session_key: str | None = None) -> None:
        """Delete the stored session under `session_key` (default: this session's key);
        1 round trip, none without a key."""
        handle = self._delete_target(session_key)
        if handle is not None:
            self._redis.store.destroy(handle)
            self._deleted(handle)

    async def adelete(self, session_key: str | None = None) -> None:
        """The asyncio twin of `delete`."""
        handle = self._delete_target(session_key)
        if handle is not None:
            await self._redis.async_store().destroy(handle)
            self._deleted(handle)

    def _plan_cycle(self, data: Mapping[str, Any]) -> tuple[Plan, dict[str, bytes]]:
        old = self._stored
        created = self._created_ms if old else now_ms()
        self._new_key()
        self._created_ms = created
        ttl = self._ttl_ms(data)
        encoded = self._encode(data)
        if self._degraded:
            return None, encoded  # nothing is written while degraded; the key still rotates
        if ttl <= 0:
            return (Destroy(handle=old) if old else None), encoded
        fields = fields_of(encoded, created_ms=created)
        # One atomic step: the new key is written and the old deleted only if the old one
        # still exists, so a concurrent logout is not undone under the new key.
        new = handle_for(self.session_key)
        return (
            Write(handle=new, fields=fields, ttl_ms=ttl, create=True, regenerated_from=old),
            encoded,
        )

    def _cycled(self, plan: Plan, encoded: dict[str, bytes], applied: bool) -> None:
        if not applied:
            self._session_cache = {}
            self._session_key = None
            self._stored, self._raw = None, {}
            self.modified = False
            raise SessionInterrupted(
                "The session was deleted (a logout in a concurrent request?) while its key "
                "was being cycled."
            )
        if isinstance(plan, Write):
            self._stored, self._raw, self._fresh = plan.handle, encoded, True
        self.modified = True

    def cycle_key(self) -> None:
        """A new key with the same data, the old stored session deleted, atomically (1 round
        trip, plus the load if the session was not read yet). Called by Django's `login()`."""
        data = self._session
        plan, encoded = self._plan_cycle(data)
        applied = self._redis.store.commit(plan).applied
        self._session_cache = data
        self._cycled(plan, encoded, applied)

    async def acycle_key(self) -> None:
        """The asyncio twin of `cycle_key` (called by Django's `alogin()`)."""
        data = await self._aget_session()
        plan, encoded = self._plan_cycle(data)
        applied = (await self._redis.async_store().commit(plan)).applied
        self._session_cache = data
        self._cycled(plan, encoded, applied)

    @classmethod
    def clear_expired(cls) -> None:
        """A no-op: Redis deletes each session when its TTL runs out (``clearsessions`` has
        nothing to do)."""

    @classmethod
    async def aclear_expired(cls) -> None:
        """The asyncio twin of `clear_expired` (a no-op)."""


# Last: the middleware module checks for this module's SessionStore.
from .middleware import StoreUnavailableMiddleware  # noqa: E402
