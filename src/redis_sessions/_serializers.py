"""Value serializers: JSON (orjson when installed) and msgpack. Never pickle.

A serializer turns one top-level session value into bytes and back. Anything it cannot decode
raises `ValueError`, which the engine treats as a corrupt (hence missing) session.
"""

from __future__ import annotations

import json
from typing import Any, Protocol, runtime_checkable

__all__ = ["JSONSerializer", "MsgpackSerializer", "Serializer", "default_serializer"]


@runtime_checkable
class Serializer(Protocol):
    """What a serializer provides; `name` identifies it in logs and docs."""

    name: str

    def dumps(self, value: Any) -> bytes:
        """Encode one session value; raise `TypeError` for values it cannot represent."""
        ...

    def loads(self, data: bytes) -> Any:
        """Decode bytes written by `dumps`; raise `ValueError` for anything else."""
        ...


class JSONSerializer:
    """JSON, compact, UTF-8; uses orjson when it is installed (same output for JSON types)."""

    name = "json"

    def __init__(self, *, use_orjson: bool | None = None) -> None:
        orjson: Any = None
        if use_orjson is not False:
            try:
                import orjson
            except ImportError:  # pragma: no cover - orjson is in the test environment
                if use_orjson:
                    raise
        self._orjson = orjson
        if orjson is not None:
            self.dumps = self._dumps_orjson  # type: ignore[method-assign]
            self.loads = self._loads_orjson  # type: ignore[method-assign]

    def dumps(self, value: Any) -> bytes:
        """Encode `value` as compact JSON."""
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def loads(self, data: bytes) -> Any:
        """Decode JSON; invalid UTF-8 or JSON, or absurd nesting, raises `ValueError`."""
        try:
            return json.loads(data.decode("utf-8"))
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None

    def _dumps_orjson(self, value: Any) -> bytes:
        return self._orjson.dumps(value)  # type: ignore[no-any-return]

    def _loads_orjson(self, data: bytes) -> Any:
        return self._orjson.loads(data)


class MsgpackSerializer:
    """msgpack (needs the `msgpack` extra): smaller than JSON, keeps bytes values as bytes."""

    name = "msgpack"

    def __init__(self) -> None:
        import msgpack

        self._msgpack: Any = msgpack

    def dumps(self, value: Any) -> bytes:
        """Encode `value` with msgpack (strict types: no arbitrary objects)."""
        return self._msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]

    def loads(self, data: bytes) -> Any:
        """Decode msgpack; truncated or invalid data raises `ValueError`."""
        try:
            return self._msgpack.unpackb(data, raw=False, strict_map_key=False)
        except Exception as exc:  # msgpack raises several unrelated types for bad input
            raise ValueError(f"invalid msgpack: {exc}") from None


def default_serializer() -> Serializer:
    """The default: JSON (with orjson when installed)."""
    return JSONSerializer()
