"""`Session`: the dict an app reads and writes, recording what changed.

The session records which keys were set and deleted, so a save writes only those fields.
Changes *inside* a nested value (``session["cart"].append(x)``) are detected too: every dict
or list value that the app read is re-serialized at the end of the request and compared with
the bytes loaded from Redis; only values that really differ are written. Values that are
neither dicts nor lists are immutable in JSON terms, so reading them costs nothing at save
time. `mark_modified` forces a key (or the whole session) to be written.

`Session` is a `dict` (`TrackedDict` says what readers written in C see of it): a lazily
loaded session (WSGI, Flask, ASGI ``lazy=True``) that nothing has loaded yet looks empty
(``{}``) to json and orjson; any access loads it first (``session.get(...)``,
``len(session)``, ``dict(session)``, ``await session.aload()``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from ._errors import SessionStateError
from ._record import Record
from ._tracked import TrackedDict, _clear, _contains, _len, _setitem

__all__ = ["Session", "SessionBinding"]


class SessionBinding(Protocol):
    """What an adapter attaches to a session so `save()` / `reload()` can reach the store."""

    def save(self, session: Session) -> None:
        """Write the session now (sync adapters)."""
        ...

    def reload(self, session: Session) -> None:
        """Re-read the session from the store, dropping unsaved changes (sync adapters)."""
        ...

    async def asave(self, session: Session) -> None:
        """Write the session now (asyncio adapters)."""
        ...

    async def areload(self, session: Session) -> None:
        """Re-read the session, dropping unsaved changes (asyncio adapters)."""
        ...


class Session(TrackedDict):
    """A server-side session: a `dict` of str keys to JSON-like values that records its changes.

    It is a real `dict` (``isinstance(session, dict)``; ``json.dumps(session)``, orjson,
    msgpack and Starlette's ``JSONResponse`` take it as is) whose every reading and mutating
    method is overridden to load a lazy session first and to record what changed. Copies
    (``copy()``, `copy.copy`, ``session | other``, pickling) are plain dicts, detached from
    the store.

    Sessions are made by the engine; apps get them from their adapter
    (``request.session``, ``flask.session``, `redis_sessions.wsgi.get_session`).
    """

    __slots__ = (
        "_aloader",
        "_binding",
        "_created_ms",
        "_destroyed",
        "_genid",
        "_handle",
        "_id",
        "_is_new",
        "_refresh_ms",
        "_regenerated",
        "_touch",
        "_ttl_ms",
        "_whole",
    )

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        *,
        genid: Callable[[], str],
        created_ms: int = 0,
    ) -> None:
        super().__init__()
        self._id: str | None = None
        self._handle: str | None = None  # the stored session this was loaded from
        self._genid = genid
        self._created_ms = created_ms
        self._destroyed = False
        self._regenerated = False
        self._touch = False
        self._whole = False
        self._ttl_ms = 0  # the stored key's remaining TTL after the load
        self._refresh_ms = 0  # TTL to set at the end of the request (a due refresh), or 0
        self._binding: SessionBinding | None = None
        self._aloader: Callable[[Session], Awaitable[None]] | None = None
        self._is_new = True
        if data:
            self.update(data)

    # -- lazy loading (WSGI, FastAPI dependencies) ------------------------------------------

    def _set_async_loader(self, loader: Callable[[Session], Awaitable[None]]) -> None:
        """Make the session load on `aload()`; sync access before that is an error."""
        self._aloader = loader
        self._loader = _not_loaded  # also tells the engine "never loaded: nothing to write"

    async def aload(self) -> None:
        """Load a lazily loaded session (ASGI middleware with ``lazy=True``); a no-op when the
        session is loaded already. Costs the one read round trip, once per request."""
        loader = self._aloader
        if loader is not None:
            await loader(self)  # on error the loader stays for the next try
            self._aloader = None
            self._loader = None

    def __repr__(self) -> str:
        # No values: a session often holds secrets, and reprs end up in logs.
        state = "unloaded" if self._loader is not None else f"{_len(self)} keys"
        return f"<Session {'new' if self._is_new else 'stored'}, {state}>"

    # -- identity and lifecycle -------------------------------------------------------------

    @property
    def id(self) -> str:
        """The session id (what the signed cookie carries); assigned on first use."""
        if self._loader is not None:
            self._ensure()
        if self._id is None:
            self._id = self._genid()
        return self._id

    @property
    def is_new(self) -> bool:
        """True when the session was not loaded from the store (first visit, or an expired,
        destroyed, tampered or unknown cookie)."""
        if self._loader is not None:
            self._ensure()
        return self._is_new

    @property
    def created_at(self) -> float:
        """Creation time, seconds since the epoch."""
        if self._loader is not None:
            self._ensure()
        return self._created_ms / 1000

    @property
    def is_destroyed(self) -> bool:
        """True after `destroy()` in this request."""
        return self._destroyed

    @property
    def is_modified(self) -> bool:
        """True when keys were set, incremented or deleted, or `regenerate()` /
        `mark_modified()` was called.

        Changes inside nested values are only known at save time (see the module docs).
        """
        return bool(
            self._set
            or self._deleted
            or self._regenerated
            or self._whole
            or self._incr
            or self._setnx
        )

    def regenerate(self) -> None:
        """Give the session a new id, keeping its data; the old id stops working.

        Call it on login and on any privilege change: it defeats session fixation (OWASP).
        The old stored session is deleted when the new one is written.
        """
        if self._loader is not None:
            self._ensure()
        self._id = None
        self._regenerated = True
        self._destroyed = False

    def destroy(self) -> None:
        """Delete the session: the stored copy is removed and the cookie cleared (logout).

        A lazily loaded session is loaded first, so that only a session that exists is
        deleted. Changes made after `destroy()` in the same request are not saved.
        """
        if self._loader is not None:
            self._ensure()
        self._destroyed = True
        _clear(self)
        self._clear_records()

    def touch(self) -> None:
        """Refresh the session's expiry (and re-send the cookie) even if nothing changed."""
        if self._loader is not None:
            self._ensure()  # a lazy session must exist to be touched
        self._touch = True

    def mark_modified(self, key: str | None = None) -> None:
        """Force `key` (or, with no key, every key) to be written at the next save.

        Nested changes are detected automatically for dicts and lists; use this for values
        changed through other references, or to force a rewrite.
        """
        if self._loader is not None:
            self._ensure()
        if key is None:
            self._whole = True
        elif _contains(self, key):
            self._set.add(key)
            if key in self._raw:
                self._raw[key] = b""  # never equal to a serialized value: always rewritten

    # -- the change record's life: what the engine's results do to it ----------------------
    # The engine reads the records to plan a write; it changes the session only through these.

    def _forget_changes(self) -> None:
        """Record no change: after a load, or once a plan was run."""
        self._clear_records()
        self._regenerated = self._whole = False
        self._refresh_ms = 0

    def _restore(
        self,
        record: Record | None,
        *,
        now_ms: int,
        sid: str | None = None,
        handle: str | None = None,
        ttl_ms: int = 0,
        refresh_ms: int = 0,
    ) -> None:
        """Become the stored session `record` (None: a new empty one), dropping every change."""
        self._forget_changes()
        self._destroyed = False
        if record is None:
            self._reset({}, {})
            self._created_ms = now_ms
            self._handle = self._id = None
            self._is_new = True
            return
        self._reset(record.data, record.raw)
        self._created_ms = record.created_ms
        self._handle, self._id = handle, sid
        self._ttl_ms, self._refresh_ms = ttl_ms, refresh_ms
        self._is_new = False

    def _stored(
        self,
        written: Mapping[str, bytes],
        computed: Mapping[str, tuple[Any, bytes]],
        *,
        handle: str,
        sid: str | None,
        ttl_ms: int,
    ) -> None:
        """A write applied: `written` (user key -> bytes) is the new baseline, `computed` (key
        -> (value, bytes)) what Redis made of increments and set-if-absent; `sid` the id it
        was stored under when that is not the session's (a spare)."""
        raw = self._raw
        raw.update(written)
        for key, (value, data) in computed.items():
            _setitem(self, key, value)
            raw[key] = data
        for key in self._deleted:
            raw.pop(key, None)
        self._handle = handle
        if sid is not None:
            self._id = sid
        self._ttl_ms = ttl_ms
        self._is_new = False
        self._forget_changes()

    def _touched(self, ttl_ms: int) -> None:
        """A TTL refresh applied."""
        self._ttl_ms = ttl_ms
        self._forget_changes()

    def _gone(self) -> None:
        """The stored session was deleted (a `Destroy` applied): nothing is stored any more."""
        self._handle = None
        self._is_new = True
        self._raw = {}
        self._clear_records()

    def _lost(self) -> None:
        """A write found the session gone (a logout elsewhere): stay destroyed, so neither
        this save nor a later one in the request brings it back under any id."""
        self.destroy()
        self._handle = None

    # -- explicit I/O through the adapter ---------------------------------------------------

    def _bound(self) -> SessionBinding:
        if self._binding is None:
            raise SessionStateError("this session is not attached to a request or store")
        return self._binding

    def save(self) -> None:
        """Write the session now, mid-request (sync adapters); the response still saves later
        changes."""
        self._bound().save(self)

    def reload(self) -> None:
        """Re-read the session from the store, dropping unsaved changes (sync adapters)."""
        self._bound().reload(self)

    async def asave(self) -> None:
        """Write the session now, mid-request (asyncio adapters)."""
        await self._bound().asave(self)

    async def areload(self) -> None:
        """Re-read the session from the store, dropping unsaved changes (asyncio adapters)."""
        await self._bound().areload(self)


def _not_loaded(session: Session) -> None:
    raise SessionStateError(
        "the session is not loaded yet: await session.aload() first "
        "(or use the redis_sessions.fastapi dependency)"
    )
