"""redis-sessions: server-side sessions in Redis or Valkey for any Python web app.

The app API: the stores (Redis sync and asyncio, in-memory for tests), their settings and
connection helpers, `Session` and the errors. The adapters are modules of their own
(`redis_sessions.asgi`, `.wsgi`, `.fastapi`, `.flask`, `.quart`, `.litestar`, `.django`);
the engine API for adapter authors is `redis_sessions.engine`.
"""

from ._config import CookieConfig, SessionConfig
from ._connect import ConnectOptions, connect, connect_async
from ._errors import (
    ConfigError,
    RedisSessionsError,
    SessionLockError,
    SessionStateError,
    SessionTooLargeError,
    StoreUnavailableError,
)
from ._ids import handle_for
from ._serializers import JSONSerializer, MsgpackSerializer, Serializer
from ._session import Session
from .store._async import AsyncRedisStore
from .store._listing import SessionInfo
from .store._memory import AsyncMemoryStore, MemoryStore
from .store._sync import RedisStore

__version__ = "0.1.0"

__all__ = [
    "AsyncMemoryStore",
    "AsyncRedisStore",
    "ConfigError",
    "ConnectOptions",
    "CookieConfig",
    "JSONSerializer",
    "MemoryStore",
    "MsgpackSerializer",
    "RedisSessionsError",
    "RedisStore",
    "Serializer",
    "Session",
    "SessionConfig",
    "SessionInfo",
    "SessionLockError",
    "SessionStateError",
    "SessionTooLargeError",
    "StoreUnavailableError",
    "__version__",
    "connect",
    "connect_async",
    "handle_for",
]
