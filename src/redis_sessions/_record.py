"""How a session is laid out as Redis hash fields, and decoding of what Redis returned.

Each top-level session key is one hash field. Metadata lives in fields starting with ``$``; a
user key that itself starts with ``$`` is stored with one more ``$``, so user keys can never
collide with metadata (``"$x"`` is stored as ``"$$x"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import SessionTooLargeError
from ._serializers import Serializer

__all__ = [
    "ACCESSED",
    "CREATED",
    "IDLE_TTL",
    "Record",
    "check_size",
    "decode_record",
    "encode_fields",
    "field_name",
    "fields_of",
    "key_of",
    "size_of",
]

CREATED = "$c"  # creation time, integer milliseconds since the epoch
IDLE_TTL = "$t"  # per-session idle timeout in ms, written only when idle_timeout is a callable
ACCESSED = "$a"  # last access in ms since the epoch, written only with disable_ttl


def field_name(key: str) -> str:
    """Return the hash field that stores user key `key`."""
    return "$" + key if key[:1] == "$" else key


def key_of(field: str) -> str | None:
    """The user key a hash field stores (`field_name`'s inverse), or None for metadata."""
    if field[:1] != "$":
        return field
    return field[1:] if field[:2] == "$$" else None


def fields_of(values: Mapping[str, bytes], *, created_ms: int | None = None) -> dict[str, bytes]:
    """The hash fields storing serialized `values` (user key -> bytes), with the creation
    time when given."""
    fields = {field_name(key): value for key, value in values.items()}
    if created_ms is not None:
        fields[CREATED] = str(created_ms).encode()
    return fields


def encode_fields(
    data: Mapping[str, Any], serializer: Serializer, *, created_ms: int | None = None
) -> dict[str, bytes]:
    """The hash fields of `data` (each value serialized), with the creation time when given."""
    dumps = serializer.dumps
    return fields_of({key: dumps(value) for key, value in data.items()}, created_ms=created_ms)


def size_of(fields: Mapping[str, bytes]) -> int:
    """What `fields` weigh against ``max_size``: field names (UTF-8) plus values, in bytes."""
    return sum(len(name.encode()) + len(value) for name, value in fields.items())


def check_size(size: int, limit: int) -> None:
    """Raise `SessionTooLargeError` when a session of `size` bytes is over `limit`."""
    if size > limit:
        raise SessionTooLargeError(size, limit)


@dataclass(slots=True)
class Record:
    """A decoded stored session: user data, raw bytes per key, metadata."""

    data: dict[str, Any]
    raw: dict[str, bytes]
    created_ms: int
    size: int


def decode_record(fields: Mapping[bytes, bytes], serializer: Serializer, max_size: int) -> Record:
    """Decode a hash's fields into a `Record`.

    Raises `ValueError` for anything that is not a session this package wrote: missing or bad
    metadata, field names that are not UTF-8, values the serializer rejects, or a total size
    over `max_size`.
    """
    size = 0
    created_ms: int | None = None
    data: dict[str, Any] = {}
    raw: dict[str, bytes] = {}
    for name_bytes, value in fields.items():
        size += len(name_bytes) + len(value)
        if size > max_size:
            raise ValueError(f"stored session is over max_size ({max_size} bytes)")
        name = name_bytes.decode("utf-8")  # UnicodeDecodeError is a ValueError
        if name[:2] == "$$":
            key = name[1:]
        elif name[:1] == "$":
            if name == CREATED:
                created_ms = int(value)
            continue
        else:
            key = name
        data[key] = serializer.loads(value)
        raw[key] = value
    if created_ms is None:
        raise ValueError("stored session has no creation time")
    return Record(data=data, raw=raw, created_ms=created_ms, size=size)
