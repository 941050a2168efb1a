"""`Session`: the mapping an app reads and writes, recording what changed.

The session records which keys were set and deleted, so a save writes only those fields.
Changes *inside* a nested value (``session["cart"].append(x)``) are detected too: every dict
or list value that the app read is re-serialized at the end of the request and compared with
the bytes loaded from Redis; only values that really differ are written. Values that are
neither dicts nor lists are immutable in JSON terms, so reading them costs nothing at save
time. `mark_modified` forces a key (or the whole session) to be written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from typing import Any, Protocol

from ._errors import SessionStateError

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


class Session(MutableMapping[str, Any]):
    """A server-side session: a mutable mapping of str keys to JSON-like values.

    Sessions are made by the engine; apps get them from their adapter
    (``request.session``, ``flask.session``, `redis_sessions.wsgi.get_session`).
    """

    __slots__ = (
        "_accessed",
        "_aloader",
        "_binding",
        "_created_ms",
        "_data",
        "_deleted",
        "_destroyed",
        "_genid",
        "_handle",
        "_id",
        "_incr",
        "_is_new",
        "_loader",
        "_lock",
        "_raw",
        "_refresh_ms",
        "_regenerated",
        "_set",
        "_setnx",
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
        self._data: dict[str, Any] = {}
        self._raw: dict[str, bytes] = {}
        self._set: set[str] = set()
        self._deleted: set[str] = set()
        self._accessed: set[str] = set()
        self._incr: dict[str, int] = {}  # pending HINCRBY per key
        self._setnx: set[str] = set()  # keys to store only where absent (HSETNX)
        self._lock: tuple[str, str] | None = None  # (handle, token) of the lock held
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
        self._loader: Callable[[Session], None] | None = None
        self._aloader: Callable[[Session], Awaitable[None]] | None = None
        self._is_new = True
        if data:
            self.update(data)

    # -- lazy loading (WSGI, FastAPI dependencies) ------------------------------------------

    def _ensure(self) -> None:
        loader = self._loader
        if loader is not None:
            loader(self)  # fills the session; on error the loader stays for the next try
            self._loader = None

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

    # -- mapping ----------------------------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        if self._loader is not None:
            self._ensure()
        value = self._data[key]
        if type(value) in (dict, list):
            self._accessed.add(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(f"session keys must be str, not {type(key).__name__}")
        if self._loader is not None:
            self._ensure()
        self._data[key] = value
        self._set.add(key)
        self._deleted.discard(key)
        if self._incr or self._setnx:
            self._incr.pop(key, None)  # an assignment replaces a pending atomic update
            self._setnx.discard(key)

    def __delitem__(self, key: str) -> None:
        if self._loader is not None:
            self._ensure()
        del self._data[key]
        self._set.discard(key)
        self._accessed.discard(key)
        if self._incr or self._setnx:
            self._incr.pop(key, None)
            self._setnx.discard(key)
        if key in self._raw:
            self._deleted.add(key)

    def __iter__(self) -> Iterator[str]:
        if self._loader is not None:
            self._ensure()
        return iter(self._data)

    def __len__(self) -> int:
        if self._loader is not None:
            self._ensure()
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        if self._loader is not None:
            self._ensure()
        return key in self._data

    def incr(self, key: str, by: int = 1) -> int:
        """Add `by` to the integer at `key` (missing counts as 0), atomically in Redis.

        The save applies it with ``HINCRBY`` in its single round trip, so concurrent requests
        incrementing the same key all count (a plain ``session[key] += 1`` is last writer
        wins). Returns the value as this request knows it: exact unless another request
        incremented meanwhile; after the save (at the end of the request, or
        ``session.save()`` / ``await session.asave()``) ``session[key]`` is the value Redis
        computed. Raises `TypeError` if the current value is not an int.
        """
        if self._loader is not None:
            self._ensure()
        if isinstance(by, bool) or not isinstance(by, int):
            raise TypeError(f"incr: by must be an int, not {type(by).__name__}")
        if not isinstance(key, str):
            raise TypeError(f"session keys must be str, not {type(key).__name__}")
        current = self._data.get(key, 0)
        if isinstance(current, bool) or not isinstance(current, int):
            raise TypeError(f"incr: session[{key!r}] is {type(current).__name__}, not int")
        value = current + by
        self._data[key] = value
        if key in self._deleted:  # deleted earlier in this request: a plain assignment
            self._deleted.discard(key)
            self._set.add(key)
        elif key not in self._set and key not in self._setnx:
            self._incr[key] = self._incr.get(key, 0) + by  # else the assignment carries it
        return value

    def setdefault(self, key: str, default: Any = None) -> Any:
        """``session[key]`` if present; else store `default` there, only if no other request
        stored that key first (``HSETNX`` in the save). Returns the value as known now; after
        the save ``session[key]`` is whichever value won."""
        if self._loader is not None:
            self._ensure()
        if key in self._data:
            return self[key]
        if not isinstance(key, str):
            raise TypeError(f"session keys must be str, not {type(key).__name__}")
        self._data[key] = default
        self._deleted.discard(key)
        self._setnx.add(key)
        return default

    def clear(self) -> None:
        """Remove every key (the deletions are saved; see `SessionConfig.unset`)."""
        for key in list(self):
            del self[key]

    def __repr__(self) -> str:
        state = "unloaded" if self._loader is not None else f"{len(self._data)} keys"
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
        return bool(self._set or self._deleted or self._regenerated or self._whole
                    or self._incr or self._setnx)

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
        self._data.clear()
        self._set.clear()
        self._deleted.clear()
        self._accessed.clear()
        self._incr.clear()
        self._setnx.clear()

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
        elif key in self._data:
            self._set.add(key)
            if key in self._raw:
                self._raw[key] = b""  # never equal to a serialized value: always rewritten

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
