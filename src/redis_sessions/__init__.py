"""redis-sessions: server-side sessions in Redis or Valkey for any Python web app.

Public API: the session engine and `Session`, the Redis stores (sync and asyncio), the
in-memory store for tests, the connection helpers and the errors. Adapters live in
`redis_sessions.asgi` and `redis_sessions.wsgi`; the local server in `redis_sessions.server`.
"""

from ._config import CookieConfig, SessionConfig
from ._connect import ConnectOptions, connect, connect_async
from ._engine import (
    Destroy,
    Incoming,
    Load,
    Loaded,
    Release,
    SessionEngine,
    Touch,
    Write,
    is_secure_request,
    should_save,
    should_set_cookie,
    should_touch,
)
from ._errors import (
    ConfigError,
    RedisSessionsError,
    SessionLockError,
    SessionStateError,
    SessionTooLargeError,
    StoreUnavailableError,
)
from ._ids import handle_for, is_well_formed, new_id
from ._serializers import JSONSerializer, MsgpackSerializer, Serializer
from ._session import Session
from ._signing import Signer
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
    "Destroy",
    "Incoming",
    "JSONSerializer",
    "Load",
    "Loaded",
    "MemoryStore",
    "MsgpackSerializer",
    "RedisSessionsError",
    "RedisStore",
    "Release",
    "Serializer",
    "Session",
    "SessionConfig",
    "SessionEngine",
    "SessionInfo",
    "SessionLockError",
    "SessionStateError",
    "SessionTooLargeError",
    "Signer",
    "StoreUnavailableError",
    "Touch",
    "Write",
    "__version__",
    "connect",
    "connect_async",
    "handle_for",
    "is_secure_request",
    "is_well_formed",
    "new_id",
    "should_save",
    "should_set_cookie",
    "should_touch",
]
