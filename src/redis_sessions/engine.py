"""The engine API, for adapter authors: the sans-IO session engine and the values it trades
with a store.

An app uses an adapter (`redis_sessions.asgi`, `redis_sessions.flask`, ...) and never needs
this module. An adapter for another framework begins one `RequestCycle` per request with
`SessionEngine.begin` and lets an `AsyncDriver` or `SyncDriver` run its store calls; see
``docs/design.md`` ("One request", "Writing an adapter") for the cycle and a complete small
adapter.
"""

from ._adapter import (
    AsyncDriver,
    SyncDriver,
    replaces_answer,
    unavailable_body,
    unavailable_headers,
)
from ._cycle import RequestCycle
from ._engine import SessionEngine, now_ms
from ._ids import handle_for, is_well_formed, new_id
from ._plans import (
    Committed,
    Destroy,
    Incoming,
    Load,
    Loaded,
    LockHold,
    Plan,
    Release,
    Touch,
    Write,
)
from ._rules import is_secure_request, should_save, should_set_cookie, should_touch
from ._signing import Signer
from ._stores import AsyncStore, SyncStore

__all__ = [
    "AsyncDriver",
    "AsyncStore",
    "Committed",
    "Destroy",
    "Incoming",
    "Load",
    "Loaded",
    "LockHold",
    "Plan",
    "Release",
    "RequestCycle",
    "SessionEngine",
    "Signer",
    "SyncDriver",
    "SyncStore",
    "Touch",
    "Write",
    "handle_for",
    "is_secure_request",
    "is_well_formed",
    "new_id",
    "now_ms",
    "replaces_answer",
    "should_save",
    "should_set_cookie",
    "should_touch",
    "unavailable_body",
    "unavailable_headers",
]
