"""A new session never writes into a key that exists: a repeating genid gives a spare id."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from redis_sessions import ConfigError, MemoryStore, SessionConfig, SessionStateError
from redis_sessions.engine import SessionEngine, Write, handle_for, new_id
from tests.store.storekit import StoreProxy, now_ms, open_session

FIXED = "f" * 43


def repeating(*ids: str) -> Callable[[], str]:
    """A weak genid: the given ids in order (the first one for the check at configuration),
    then random ones."""
    it = iter(ids)
    return lambda: next(it, None) or new_id()


def create(store: StoreProxy, engine: object, **data: str) -> object:
    now = now_ms()
    session = engine.new_session(now)  # type: ignore[attr-defined]
    session.update(data)
    plan = engine.plan(session, now)  # type: ignore[attr-defined]
    assert isinstance(plan, Write) and plan.create
    engine.committed(session, plan, store.commit(plan))  # type: ignore[attr-defined]
    return session


def test_a_repeated_id_never_merges_two_users_sessions(store: StoreProxy) -> None:
    a1, a2, b1, b2 = (new_id() for _ in range(4))
    engine = store.engine(genid=repeating(FIXED, FIXED, a1, a2, FIXED, b1, b2))
    alice = create(store, engine, user="alice")
    bob = create(store, engine, user="bob")
    assert alice.id == FIXED  # type: ignore[attr-defined]
    assert bob.id == b1  # type: ignore[attr-defined]
    assert dict(open_session(store, engine, FIXED)) == {"user": "alice"}
    assert dict(open_session(store, engine, b1)) == {"user": "bob"}
    assert store.get(handle_for(b2)) is None


def test_a_regenerate_onto_a_taken_id_takes_a_spare(store: StoreProxy) -> None:
    a1, a2, b1, b2, b3, c1, c2 = (new_id() for _ in range(7))
    engine = store.engine(genid=repeating(FIXED, FIXED, a1, a2, b1, b2, b3, FIXED, c1, c2))
    create(store, engine, user="alice")
    bob = create(store, engine, user="bob")
    assert bob.id == b1  # type: ignore[attr-defined]
    again = open_session(store, engine, b1)
    again.regenerate()
    again["role"] = "admin"
    now = now_ms()
    plan = engine.plan(again, now)
    engine.committed(again, plan, store.commit(plan))
    assert again.id == c1
    assert dict(open_session(store, engine, c1)) == {"user": "bob", "role": "admin"}
    assert dict(open_session(store, engine, FIXED)) == {"user": "alice"}
    assert store.get(handle_for(b1)) is None


def test_a_re_sent_create_never_writes_into_its_first_copy(store: StoreProxy) -> None:
    # redis-py re-sends a command whose reply was lost. A create carries no nonce (it would
    # cost a log key per new session): the second send takes a spare id, leaving the first
    # copy to expire with its TTL; neither copy is merged into anything.
    engine = store.engine()
    now = now_ms()
    session = engine.new_session(now)
    session["a"] = "1"
    plan = engine.plan(session, now)
    assert isinstance(plan, Write)
    first = store.commit(plan)
    assert first.applied and first.taken is None
    again = store.commit(plan)
    assert again.applied and again.taken is not None
    engine.committed(session, plan, again)
    assert session.id == plan.spare[0][0]
    assert dict(open_session(store, engine, session.id)) == {"a": "1"}
    assert store.length() == 2


def test_a_genid_that_always_repeats_is_a_clear_error(store: StoreProxy) -> None:
    engine = store.engine(genid=lambda: FIXED)
    create(store, engine, user="alice")
    with pytest.raises(SessionStateError, match="genid"):
        create(store, engine, user="bob")
    assert dict(open_session(store, engine, FIXED)) == {"user": "alice"}


def test_every_genid_result_is_shape_checked() -> None:
    store = MemoryStore()
    config = SessionConfig(secret="s" * 32, genid=repeating(FIXED, "bad id"))
    engine = SessionEngine(config, serializer=store.serializer, max_size=store.max_size)
    session = engine.new_session(now_ms())
    with pytest.raises(ConfigError, match="genid"):
        _ = session.id
