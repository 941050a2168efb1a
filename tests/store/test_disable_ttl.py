"""`disable_ttl`: no TTL on any key, the idle and absolute timeouts enforced by the reads.

The saves (and the due refresh of a read) record the last access in ``$a``; a read past the idle
timeout (or the lifetime) finds the session missing and deletes it. Runs on every store runner.
The time is injected: the engine's `now_ms`, and the layout's `clock` for what a save records.
"""

from __future__ import annotations

import pytest

from redis_sessions.engine import SessionEngine, Write, handle_for
from tests.store.storekit import (
    MakeStore,
    StoreProxy,
    create_session,
    key_exists,
    now_ms,
    open_session,
)

IDLE_S = 100
IDLE_MS = IDLE_S * 1000


def request_at(store: StoreProxy, engine: SessionEngine, sid: str, now: int) -> bool:
    """A whole read-only request at `now` (load, then the end-of-request plan and commit, where
    the due refresh writes the last access) -> whether the session was found."""
    store.layout.clock = lambda: now
    session = open_session(store, engine, sid, now)
    plan = engine.plan(session, now)
    engine.committed(session, plan, store.commit(plan))
    return not session.is_new


def start(store: StoreProxy, engine: SessionEngine) -> tuple[str, str, int]:
    """A session created now -> (id, handle, creation time)."""
    created = now_ms()
    store.layout.clock = lambda: created
    session = create_session(store, engine, created, a=1)
    return session.id, handle_for(session.id), created


@pytest.mark.parametrize("rolling", [False, True])
def test_idle_session_is_missing_and_deleted(make_store: MakeStore, rolling: bool) -> None:
    store = make_store(disable_ttl=True)
    engine = store.engine(idle_timeout=IDLE_S, lifetime=None, rolling=rolling)
    sid, handle, created = start(store, engine)
    assert request_at(store, engine, sid, created + IDLE_MS)  # at the bound: still alive
    assert not request_at(store, engine, sid, created + 2 * IDLE_MS + 1)
    assert not key_exists(store, handle)  # deleted on sight


@pytest.mark.parametrize("rolling", [False, True])
def test_read_within_the_window_keeps_it_alive(make_store: MakeStore, rolling: bool) -> None:
    store = make_store(disable_ttl=True)
    engine = store.engine(idle_timeout=IDLE_S, lifetime=None, rolling=rolling)
    sid, handle, created = start(store, engine)
    for step in range(1, 6):  # five reads 80 s apart: 400 s in all, four idle timeouts
        assert request_at(store, engine, sid, created + step * 80_000)
    assert dict(open_session(store, engine, sid, created + 400_000)) == {"a": 1}
    assert not request_at(store, engine, sid, created + 400_000 + IDLE_MS + 1)
    assert not key_exists(store, handle)


def test_absolute_lifetime_is_enforced(make_store: MakeStore) -> None:
    store = make_store(disable_ttl=True)
    engine = store.engine(idle_timeout=IDLE_S, lifetime=150)
    sid, handle, created = start(store, engine)
    assert request_at(store, engine, sid, created + 80_000)
    assert not request_at(store, engine, sid, created + 150_001)  # read 70 s after the last
    assert not key_exists(store, handle)


def test_session_from_before_the_upgrade(make_store: MakeStore) -> None:
    """A session without ``$a`` counts as accessed at its first read: nobody is logged out by
    the upgrade, and the idle timeout bounds it from that read on."""
    store = make_store(disable_ttl=True)
    engine = store.engine(idle_timeout=IDLE_S, lifetime=None)
    sid, handle, created = start(store, engine)
    assert store.commit(
        Write(handle=handle, fields={}, delete=("$a",), ttl_ms=0, create=False)
    ).applied  # as an older version wrote it
    first = created + 10 * IDLE_MS
    assert request_at(store, engine, sid, first)  # far past the idle timeout since creation
    assert request_at(store, engine, sid, first + IDLE_MS)
    assert not request_at(store, engine, sid, first + 2 * IDLE_MS + 1)
    assert not key_exists(store, handle)


def test_keys_have_no_ttl(make_redis_store: MakeStore) -> None:
    store = make_redis_store(disable_ttl=True)
    engine = store.engine(idle_timeout=IDLE_S, lifetime=150)
    sid, handle, created = start(store, engine)
    assert request_at(store, engine, sid, created + 80_000)
    assert store.raw is not None
    key = store.layout.key(handle)
    assert store.raw.pttl(key) == -1
    accessed = store.raw.hget(key, "$a")
    assert accessed is not None
    assert int(accessed) == created + 80_000  # the refresh wrote the access
