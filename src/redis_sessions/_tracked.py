"""`TrackedDict`: a `dict` that loads lazily and records every change made through it.

It holds its data in the dict itself, so code that wants a dict gets one, and overrides every
reading and mutating method: a change is recorded (the save writes only it), and a dict or
list value handed out is remembered for the nested-change check at save time.

What readers written in C call on a dict subclass (CPython 3.10-3.14, orjson 3,
msgpack 1): ``dict(s)``, ``{**s}``, ``f(**s)`` and ``d.update(s)`` call ``keys()`` and
``__getitem__`` (because `TrackedDict` overrides ``__iter__``); json's C encoder first reads the
storage's size (``{}`` when empty) and then calls ``items()``; msgpack calls ``len()`` and
``items()``; orjson reads the storage directly and calls nothing. So a lazily loaded session
(WSGI, Flask, ASGI ``lazy=True``) that nothing has loaded yet looks empty (``{}``) to json and
orjson: any access loads it first (``session.get(...)``, ``len(session)``, ``dict(session)``,
``await session.aload()``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from typing import Any, SupportsIndex, TypeVar

__all__ = ["TrackedDict"]

_Self = TypeVar("_Self", bound="TrackedDict")

# The dict's own storage, reached without the overrides below: what the engine and the
# overrides themselves use, so that their reads never count as the app's.
_getitem = dict.__getitem__
_setitem = dict.__setitem__
_delitem = dict.__delitem__
_get = dict.get
_contains = dict.__contains__
_len = dict.__len__
_iter = dict.__iter__
_reversed = dict.__reversed__
_keys = dict.keys
_items = dict.items
_eq = dict.__eq__
_clear = dict.clear
_update = dict.update

_MISSING: Any = object()


class TrackedDict(dict[str, Any]):
    """The dict behind `Session`: storage, lazy load and change records (no identity)."""

    __slots__ = ("_accessed", "_deleted", "_incr", "_loader", "_raw", "_set", "_setnx")

    def __init__(self) -> None:
        # dict.__init__ is not called: the storage starts empty.
        self._raw: dict[str, bytes] = {}  # serialized values as loaded: the save's baseline
        self._set: set[str] = set()
        self._deleted: set[str] = set()
        self._accessed: set[str] = set()
        self._incr: dict[str, int] = {}  # pending HINCRBY per key
        self._setnx: set[str] = set()  # keys to store only where absent (HSETNX)
        self._loader: Callable[[Any], object] | None = None  # the lazy load, until it ran

    def _ensure(self) -> None:
        loader = self._loader
        if loader is not None:
            loader(self)  # fills the session; on error the loader stays for the next try
            self._loader = None

    def _clear_records(self) -> None:
        """Forget which keys were set, deleted, read, incremented or set if absent."""
        self._set.clear()
        self._deleted.clear()
        self._accessed.clear()
        self._incr.clear()
        self._setnx.clear()

    def _reset(self, data: Mapping[str, Any], raw: dict[str, bytes]) -> None:
        """Replace the contents with what was loaded, recording no change (the engine's)."""
        if _len(self):
            _clear(self)
        if data:
            _update(self, data)
        self._raw = raw

    # -- reading ----------------------------------------------------------------------------
    # A dict or list handed out may be changed in place: remember it for the save's check.

    def __getitem__(self, key: str) -> Any:
        if self._loader is not None:
            self._ensure()
        value = _getitem(self, key)
        if type(value) in (dict, list):
            self._accessed.add(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        """``session[key]`` if present, else `default` (the key is not stored)."""
        if self._loader is not None:
            self._ensure()
        value = _get(self, key, _MISSING)
        if value is _MISSING:
            return default
        if type(value) in (dict, list):
            self._accessed.add(key)
        return value

    def __iter__(self) -> Iterator[str]:
        # Overriding __iter__ also makes dict(session), {**session} and dict.update(session)
        # go through keys() and __getitem__ instead of reading the storage directly.
        if self._loader is not None:
            self._ensure()
        return _iter(self)

    def __reversed__(self) -> Iterator[str]:
        if self._loader is not None:
            self._ensure()
        return _reversed(self)

    def __len__(self) -> int:
        if self._loader is not None:
            self._ensure()
        return _len(self)

    def __contains__(self, key: object) -> bool:
        if self._loader is not None:
            self._ensure()
        return _contains(self, key)

    def keys(self) -> KeysView[str]:  # type: ignore[override]
        """The keys (a live view)."""
        if self._loader is not None:
            self._ensure()
        return _keys(self)

    def values(self) -> _Values:  # type: ignore[override]
        """The values (a live view; each value read counts as handed out)."""
        if self._loader is not None:
            self._ensure()
        return _Values(self)

    def items(self) -> _Items:  # type: ignore[override]
        """The (key, value) pairs (a live view; each value read counts as handed out)."""
        if self._loader is not None:
            self._ensure()
        return _Items(self)

    def __eq__(self, other: object) -> bool:
        if self._loader is not None:
            self._ensure()
        if isinstance(other, TrackedDict) and other._loader is not None:
            other._ensure()
        return _eq(self, other)

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None  # mutable, as dict

    def copy(self) -> dict[str, Any]:
        """A plain dict of the data (shallow: nested values are shared, so they count as
        handed out), detached from the store."""
        if self._loader is not None:
            self._ensure()
        accessed = self._accessed
        for key, value in _items(self):
            if type(value) in (dict, list):
                accessed.add(key)
        return dict(_items(self))

    __copy__ = copy

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        if self._loader is not None:
            self._ensure()
        return copy.deepcopy(dict(_items(self)), memo)

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        # A pickled session is its data as a plain dict: never its store, lock or loader.
        return (dict, (self.copy(),))

    def __reduce__(self) -> tuple[Any, ...]:
        return self.__reduce_ex__(2)

    def __or__(self, other: Any) -> dict[str, Any]:  # type: ignore[override]
        if not isinstance(other, dict):
            return NotImplemented
        merged = self.copy()
        merged.update(other)
        return merged

    def __ror__(self, other: Any) -> dict[str, Any]:  # type: ignore[override]
        if not isinstance(other, dict):
            return NotImplemented
        merged = dict(other)
        merged.update(self.copy())
        return merged

    @classmethod
    def fromkeys(cls, iterable: Iterable[Any], value: Any = None) -> dict[Any, Any]:
        """A plain dict (a session is made by the engine, bound to a request)."""
        return dict.fromkeys(iterable, value)

    # -- writing: every change is recorded so the save writes only it -----------------------

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(f"session keys must be str, not {type(key).__name__}")
        if self._loader is not None:
            self._ensure()
        _setitem(self, key, value)
        self._set.add(key)
        self._deleted.discard(key)
        if self._incr or self._setnx:
            self._incr.pop(key, None)  # an assignment replaces a pending atomic update
            self._setnx.discard(key)

    def __delitem__(self, key: str) -> None:
        if self._loader is not None:
            self._ensure()
        _delitem(self, key)
        self._set.discard(key)
        self._accessed.discard(key)
        if self._incr or self._setnx:
            self._incr.pop(key, None)
            self._setnx.discard(key)
        if key in self._raw:
            self._deleted.add(key)

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        """Remove `key` and return its value (else `default`, else `KeyError`)."""
        if self._loader is not None:
            self._ensure()
        value = _get(self, key, _MISSING)
        if value is _MISSING:
            if default is _MISSING:
                raise KeyError(key)
            return default
        del self[key]
        return value

    def popitem(self) -> tuple[str, Any]:
        """Remove and return the last (key, value) pair inserted; `KeyError` when empty."""
        if self._loader is not None:
            self._ensure()
        if not _len(self):
            raise KeyError("popitem(): session is empty")
        key = next(_reversed(self))
        value = _getitem(self, key)
        del self[key]
        return key, value

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Set every key of `other` (a mapping or (key, value) pairs) and of `kwargs`."""
        if self._loader is not None:
            self._ensure()
        if hasattr(other, "keys"):
            for key in list(other.keys()):
                self[key] = other[key]
        else:
            for key, value in other:
                self[key] = value
        for key, value in kwargs.items():
            self[key] = value

    def __ior__(self: _Self, other: Any) -> _Self:  # type: ignore[override]
        self.update(other)
        return self

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
        current = _get(self, key, 0)
        if isinstance(current, bool) or not isinstance(current, int):
            raise TypeError(f"incr: session[{key!r}] is {type(current).__name__}, not int")
        value = current + by
        _setitem(self, key, value)
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
        if _contains(self, key):
            return self[key]
        if not isinstance(key, str):
            raise TypeError(f"session keys must be str, not {type(key).__name__}")
        _setitem(self, key, default)
        self._deleted.discard(key)
        self._setnx.add(key)
        return default

    def clear(self) -> None:
        """Remove every key (the deletions are saved; see `SessionConfig.unset`)."""
        for key in list(self):
            del self[key]


class _Values(ValuesView[Any]):
    """``session.values()``: read through `Session.__getitem__`, so nested changes count."""

    __slots__ = ()

    def __reversed__(self) -> Iterator[Any]:
        session = self._mapping  # type: ignore[attr-defined]
        for key in reversed(session):
            yield session[key]


class _Items(ItemsView[str, Any]):
    """``session.items()``: read through `Session.__getitem__`, so nested changes count."""

    __slots__ = ()

    def __reversed__(self) -> Iterator[tuple[str, Any]]:
        session = self._mapping  # type: ignore[attr-defined]
        for key in reversed(session):
            yield key, session[key]
