"""Shared values and builders for the sans-IO unit tests (no server, no event loop, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis_sessions import JSONSerializer, SessionConfig
from redis_sessions._record import field_name
from redis_sessions.engine import Loaded, SessionEngine

SECRET = "s" * 32
OLD_SECRET = "o" * 32
NOW_MS = 1_700_000_000_000
MAX_SIZE = 65536


def stored_fields(data: Mapping[str, Any], created_ms: int = NOW_MS) -> dict[bytes, bytes]:
    """The hash fields the store would return for `data` (written with the JSON serializer)."""
    ser = JSONSerializer()
    fields = {field_name(k).encode(): ser.dumps(v) for k, v in data.items()}
    fields[b"$c"] = str(created_ms).encode()
    return fields


def loaded(data: Mapping[str, Any], created_ms: int = NOW_MS, pttl_ms: int = 86_400_000) -> Loaded:
    """A store reply holding `data`."""
    return Loaded(pttl_ms=pttl_ms, fields=stored_fields(data, created_ms))


def make_engine(**options: Any) -> SessionEngine:
    """Build an engine from SessionConfig keyword options (secret defaults to SECRET)."""
    options.setdefault("secret", SECRET)
    return SessionEngine(SessionConfig(**options), serializer=JSONSerializer(), max_size=MAX_SIZE)
