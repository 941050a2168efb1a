"""Limits of one session and of the store's options: many keys, TTL bounds, `touch`."""

from __future__ import annotations

import pytest

from redis_sessions import ConfigError, RedisStore
from redis_sessions.engine import handle_for
from tests.store.storekit import (
    MakeStore,
    StoreProxy,
    create_session,
    key_exists,
    now_ms,
    open_session,
)

# Lua's unpack() refuses more than about 8,000 values (LUAI_MAXCSTACK): 4,000 field/value
# pairs were the most one save could carry.
MANY = 9000
BIG = 1 << 20  # max_size: room for MANY keys


def test_a_session_with_thousands_of_keys_saves_and_reads_back(make_store: MakeStore) -> None:
    store = make_store(max_size=BIG)
    engine = store.engine()
    data = {f"k{i}": i % 10 for i in range(MANY)}
    session = create_session(store, engine, **data)
    assert dict(open_session(store, engine, session.id)) == data


def test_thousands_of_keys_change_and_go_in_one_save(make_store: MakeStore) -> None:
    store = make_store(max_size=BIG)
    engine = store.engine()
    session = create_session(store, engine, **{f"k{i}": 0 for i in range(MANY)})
    again = open_session(store, engine, session.id)
    for i in range(0, MANY, 2):
        del again[f"k{i}"]
    for i in range(1, MANY, 2):
        again[f"k{i}"] = 1
    for i in range(MANY):
        again[f"n{i}"] = 2
    plan = engine.plan(again, now_ms())
    assert store.commit(plan).applied
    expected = {f"k{i}": 1 for i in range(1, MANY, 2)} | {f"n{i}": 2 for i in range(MANY)}
    assert dict(open_session(store, engine, session.id)) == expected


def test_regenerate_moves_thousands_of_keys(make_store: MakeStore) -> None:
    store = make_store(max_size=BIG)
    engine = store.engine()
    data = {f"k{i}": 1 for i in range(MANY)}
    session = create_session(store, engine, **data)
    old = session.id
    again = open_session(store, engine, old)
    again.regenerate()
    now = now_ms()
    plan = engine.plan(again, now)
    engine.committed(again, plan, store.commit(plan))
    assert again.id != old
    assert dict(open_session(store, engine, again.id)) == data
    assert open_session(store, engine, old).is_new


def test_set_of_thousands_of_keys(make_store: MakeStore) -> None:
    store = make_store(max_size=BIG)
    data = {f"k{i}": "v" for i in range(MANY)}
    assert store.set("big", data) is True
    assert store.get("big") == data
    assert store.set("big", {"a": 1}) is True
    assert store.get("big") == {"a": 1}


@pytest.mark.parametrize("ttl", [0, -1, 0.0004])
def test_touch_with_a_ttl_under_a_millisecond_is_an_error_not_a_delete(
    store: StoreProxy, ttl: float
) -> None:
    store.set("h1", {"a": 1})
    with pytest.raises(ValueError, match="TTL"):
        store.touch("h1", ttl=ttl)
    assert store.get("h1") == {"a": 1}


@pytest.mark.parametrize("ttl", [0.0004, 1e12, 0, True])
def test_store_ttl_out_of_bounds_is_a_config_error(ttl: float) -> None:
    with pytest.raises(ConfigError, match="ttl"):
        RedisStore(url="redis://127.0.0.1:1", ttl=ttl)


def test_a_callable_ttl_of_centuries_is_capped_not_a_failed_write(make_store: MakeStore) -> None:
    # The engine takes a callable idle timeout as it comes; 1e12 s is 1e15 ms, which Lua would
    # send as '1e+15' after the HSET: a key left with no TTL and an error.
    store = make_store()
    engine = store.engine(idle_timeout=lambda data: 1e12, lifetime=None)
    session = create_session(store, engine, a=1)
    assert open_session(store, engine, session.id)["a"] == 1
    if store.raw is not None:
        pttl = store.raw.pttl(store.layout.key(handle_for(session.id)))
        assert 0 < pttl <= 10 * 365 * 86400 * 1000
    assert key_exists(store, handle_for(session.id))
