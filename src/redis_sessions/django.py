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
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings  # type: ignore[import-untyped]
from django.contrib.sessions.backends.base import (  # type: ignore[import-untyped]
    CreateError,
    SessionBase,
    UpdateError,
)
from django.contrib.sessions.exceptions import (  # type: ignore[import-untyped]
    SessionInterrupted,
)
from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]
from django.core.signals import setting_changed  # type: ignore[import-untyped]
from django.http import HttpRequest, HttpResponse  # type: ignore[import-untyped]
from django.utils.deprecation import MiddlewareMixin  # type: ignore[import-untyped]

from ._adapter import unavailable_body, unavailable_headers
from ._connect import ConnectOptions
from ._errors import ConfigError, SessionTooLargeError, StoreUnavailableError
from ._ids import handle_for, is_well_formed, new_id
from ._plans import Destroy, Load, Loaded, Plan, Touch, Write
from ._record import CREATED, Record, decode_record, field_name
from ._serializers import JSONSerializer, MsgpackSerializer, Serializer
from .store._async import AsyncRedisStore
from .store._base import now_ms
from .store._sync import RedisStore

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

# The serializers Django ships; anything else (pickle above all) is refused, because each value
# is stored with this package's own serializer and a custom one would be silently ignored.
_DJANGO_JSON = (
    "django.contrib.sessions.serializers.JSONSerializer",
    "django.core.signing.JSONSerializer",
)
_INTERRUPTED = (
    "The session store is unavailable; the session could not be saved. Please retry shortly."
)
# Django's own backends try this many fresh keys before giving up on a create.
_CREATE_ATTEMPTS = 100
_CREATE_FAILED = "Unable to create a new session key: the key generator keeps repeating keys."


@dataclass(frozen=True, kw_only=True, slots=True)
class DjangoOptions:
    """The ``REDIS_SESSIONS`` setting, validated.

    Attributes:
        url: Redis URL (default ``$REDIS_URL``, then ``redis://127.0.0.1:6379/0``).
        prefix: key prefix (default ``"sess:"``, what the CLI and dashboard read).
        serializer: ``"json"`` (default, orjson when installed) or ``"msgpack"``, or an
            instance of either; never pickle.
        max_size: limit in bytes of one serialized session (default 64 KiB).
        on_unavailable: ``"error"`` (default): a failed load raises `StoreUnavailableError`
            (503 with the middleware); ``"anonymous"``: the request gets an empty session that
            is never saved (the client keeps its cookie).
        retry_after: seconds in the ``Retry-After`` header of the 503 (default 5).
        connect: `ConnectOptions` (or a dict of its fields): timeouts and retries.
        client_kwargs: extra keyword arguments for the redis-py client (e.g. TLS files).
    """

    url: str | None = None
    prefix: str = "sess:"
    serializer: Serializer = field(default_factory=JSONSerializer)
    max_size: int = 64 * 1024
    on_unavailable: str = "error"
    retry_after: int = 5
    connect: ConnectOptions = field(default_factory=ConnectOptions)
    client_kwargs: Mapping[str, Any] = field(default_factory=dict)


def options_from_settings() -> DjangoOptions:
    """Read and validate ``settings.REDIS_SESSIONS`` and ``SESSION_SERIALIZER``.

    Raises `ImproperlyConfigured` naming the offending key (pickle is refused outright).
    """
    serializer_setting = str(getattr(settings, "SESSION_SERIALIZER", _DJANGO_JSON[0]))
    if "pickle" in serializer_setting.lower():
        raise ImproperlyConfigured(
            f"SESSION_SERIALIZER = {serializer_setting!r}: redis_sessions.django never uses "
            "pickle (a writable Redis would mean code execution). Use Django's JSONSerializer."
        )
    if serializer_setting not in _DJANGO_JSON:
        raise ImproperlyConfigured(
            f"SESSION_SERIALIZER = {serializer_setting!r}: redis_sessions.django stores each "
            "session key with its own serializer; leave SESSION_SERIALIZER at Django's "
            "JSONSerializer and choose REDIS_SESSIONS['serializer'] ('json' or 'msgpack')."
        )
    raw = getattr(settings, "REDIS_SESSIONS", None) or {}
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured("REDIS_SESSIONS must be a dict")
    known = set(DjangoOptions.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ImproperlyConfigured(
            f"REDIS_SESSIONS: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(known))}"
        )
    opts = dict(raw)
    serializer = opts.get("serializer", "json")
    if serializer == "json":
        opts["serializer"] = JSONSerializer()
    elif serializer == "msgpack":
        opts["serializer"] = MsgpackSerializer()
    elif not isinstance(serializer, (JSONSerializer, MsgpackSerializer)):
        raise ImproperlyConfigured(
            f"REDIS_SESSIONS['serializer']: {serializer!r} is not 'json' or 'msgpack'"
        )
    connect_opts = opts.get("connect", ConnectOptions())
    if isinstance(connect_opts, Mapping):
        try:
            opts["connect"] = connect_opts = ConnectOptions(**connect_opts)
        except TypeError as exc:
            raise ImproperlyConfigured(f"REDIS_SESSIONS['connect']: {exc}") from None
    if not isinstance(connect_opts, ConnectOptions):
        raise ImproperlyConfigured(
            "REDIS_SESSIONS['connect']: must be a dict of ConnectOptions fields"
        )
    if opts.get("on_unavailable", "error") not in ("error", "anonymous"):
        raise ImproperlyConfigured(
            "REDIS_SESSIONS['on_unavailable']: must be 'error' or 'anonymous', "
            f"got {opts['on_unavailable']!r}"
        )
    retry_after = opts.get("retry_after", 5)
    if isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0:
        raise ImproperlyConfigured(
            f"REDIS_SESSIONS['retry_after']: must be an int >= 0, got {retry_after!r}"
        )
    return DjangoOptions(**opts)


class _Backend:
    """The stores built from one `DjangoOptions`: one sync store per process, one asyncio
    store per event loop (a redis.asyncio connection belongs to the loop that opened it)."""

    def __init__(self, options: DjangoOptions) -> None:
        self.options = options
        self._lock = threading.Lock()
        self._async: dict[asyncio.AbstractEventLoop, AsyncRedisStore] = {}
        try:
            # From the URL, not a client: the store then starts even while no Cluster node
            # answers (redis-py's sync Cluster client would raise in its constructor).
            self.store = RedisStore(
                url=options.url,
                connect_options=options.connect,
                client_kwargs=options.client_kwargs,
                **self._store_options(),
            )
        except ConfigError as exc:
            raise ImproperlyConfigured(f"REDIS_SESSIONS: {exc}") from None

    def _store_options(self) -> dict[str, Any]:
        o = self.options
        return {"prefix": o.prefix, "serializer": o.serializer, "max_size": o.max_size}

    def async_store(self) -> AsyncRedisStore:
        loop = asyncio.get_running_loop()
        with self._lock:
            store = self._async.get(loop)
            if store is None:
                for closed in [other for other in self._async if other.is_closed()]:
                    del self._async[closed]  # its connections died with their loop
                o = self.options
                store = AsyncRedisStore(
                    url=o.url,
                    connect_options=o.connect,
                    client_kwargs=o.client_kwargs,
                    **self._store_options(),
                )
                self._async[loop] = store
        return store

    async def aclose_async(self) -> None:
        with self._lock:
            store = self._async.pop(asyncio.get_running_loop(), None)
        if store is not None:
            await store.aclose()

    def close(self) -> None:
        self.store.close()
        with self._lock:
            self._async.clear()  # other loops' stores cannot be closed from here


_lock = threading.Lock()
_current: _Backend | None = None


def _backend() -> _Backend:
    global _current
    backend = _current
    if backend is None:
        with _lock:
            if _current is None:
                _current = _Backend(options_from_settings())
            backend = _current
    return backend


def get_store() -> RedisStore:
    """The process-wide `RedisStore` the engine uses (built from settings on first use)."""
    return _backend().store


def get_async_store() -> AsyncRedisStore:
    """The `AsyncRedisStore` the engine uses on the running event loop."""
    return _backend().async_store()


async def aclose_async_store() -> None:
    """Close the running event loop's store (at ASGI shutdown, or at the end of a test)."""
    backend = _current
    if backend is not None:
        await backend.aclose_async()


def close_stores() -> None:
    """Close the sync store and forget every store; the next use re-reads the settings."""
    global _current
    with _lock:
        backend, _current = _current, None
    if backend is not None:
        backend.close()


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    # override_settings() in tests: rebuild from the new settings on next use.
    if setting in ("REDIS_SESSIONS", "SESSION_SERIALIZER"):
        close_stores()


setting_changed.connect(_on_setting_changed, dispatch_uid="redis_sessions.django")


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
        if self._redis.options.on_unavailable != "anonymous":
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
        encoded, size = {}, 0
        for key, value in data.items():
            if not isinstance(key, str):
                raise TypeError(f"session keys must be str, not {type(key).__name__}")
            encoded[key] = raw = dumps(value)
            size += len(field_name(key).encode()) + len(raw)
        limit = self._redis.options.max_size
        if size > limit:
            raise SessionTooLargeError(size, limit)
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
            fields = {field_name(k): v for k, v in encoded.items()}
            fields[CREATED] = str(self._created_ms or now_ms()).encode()
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
        fields = {field_name(k): v for k, v in encoded.items()}
        fields[CREATED] = str(created).encode()
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


def _is_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, StoreUnavailableError) or (
        isinstance(exc, SessionInterrupted) and isinstance(exc.__cause__, StoreUnavailableError)
    )


def _unavailable_response(error: BaseException | None) -> HttpResponse:
    body = unavailable_body(error)
    response = HttpResponse(body, status=503)
    for name, value in unavailable_headers(_backend().options.retry_after, body):
        response[name] = value
    return response


class StoreUnavailableMiddleware(MiddlewareMixin):  # type: ignore[misc]
    """Answers ``503 Service Unavailable`` with ``Retry-After`` when Redis cannot serve the
    session, instead of a 500 (a failed load) or a 400 (a failed save).

    Put it before ``django.contrib.sessions.middleware.SessionMiddleware`` in `MIDDLEWARE`, so
    it also sees the save that Django's middleware makes on the way out. A response whose
    session could not be saved is never a 2xx: the write was lost.
    """

    def process_exception(self, request: HttpRequest, exception: Exception) -> Any:
        """A view (or the session load it triggered) failed on Redis: answer 503."""
        if not _is_unavailable(exception):
            return None
        cause = exception.__cause__ if isinstance(exception, SessionInterrupted) else exception
        return _unavailable_response(cause)

    def process_response(self, request: HttpRequest, response: Any) -> Any:
        """The session's save failed on Redis: replace the response with a 503."""
        session = getattr(request, "session", None)
        if isinstance(session, SessionStore) and session._unavailable:
            return _unavailable_response(session._unavailable)
        return response
