"""What an adapter needs of a store: the `SyncStore` and `AsyncStore` protocols.

`RedisStore` and `MemoryStore` are `SyncStore`s, `AsyncRedisStore` and `AsyncMemoryStore`
are `AsyncStore`s; any object with these members can stand in for them (scs's ``Store``
contract, as types).
"""

from __future__ import annotations

from typing import Protocol

from ._plans import Committed, Load, Loaded, Plan
from ._serializers import Serializer

__all__ = ["AsyncStore", "SyncStore"]


class SyncStore(Protocol):
    """A store an adapter drives with blocking calls."""

    @property
    def serializer(self) -> Serializer:
        """Encodes each top-level session value."""
        ...

    @property
    def max_size(self) -> int:
        """Limit in bytes of one serialized session."""
        ...

    def load(self, spec: Load) -> Loaded | None:
        """Read a session (taking its lock when `spec` asks); None when it does not exist."""
        ...

    def commit(self, plan: Plan) -> Committed:
        """Run a plan of the engine and say what came of it."""
        ...


class AsyncStore(Protocol):
    """A store an adapter drives with asyncio."""

    @property
    def serializer(self) -> Serializer:
        """Encodes each top-level session value."""
        ...

    @property
    def max_size(self) -> int:
        """Limit in bytes of one serialized session."""
        ...

    async def load(self, spec: Load) -> Loaded | None:
        """Read a session (taking its lock when `spec` asks); None when it does not exist."""
        ...

    async def commit(self, plan: Plan) -> Committed:
        """Run a plan of the engine and say what came of it."""
        ...
