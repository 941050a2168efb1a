"""The ``REDIS_SESSIONS`` setting, validated (`DjangoOptions`, `options_from_settings`), and the
stores built from it: one sync store per process, one asyncio store per event loop, rebuilt
from the settings after `close_stores()` or a test's ``override_settings``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

from .._connect import ConnectOptions
from .._errors import ConfigError
from .._serializers import JSONSerializer, MsgpackSerializer, Serializer
from ..store._async import AsyncRedisStore
from ..store._sync import RedisStore

__all__ = [
    "DjangoOptions",
    "aclose_async_store",
    "close_stores",
    "get_async_store",
    "get_store",
    "options_from_settings",
]

# The serializers Django ships; anything else (pickle above all) is refused, because each value
# is stored with this package's own serializer and a custom one would be silently ignored.
_DJANGO_JSON = (
    "django.contrib.sessions.serializers.JSONSerializer",
    "django.core.signing.JSONSerializer",
)


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
