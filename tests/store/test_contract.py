"""The store contract, run for every runner: sync Redis, asyncio Redis and in memory."""

from __future__ import annotations

from typing import Any

import pytest

from redis_sessions import MsgpackSerializer, RedisStore, SessionTooLargeError
from redis_sessions.engine import Destroy, Touch, Write, handle_for, new_id
from tests.store.storekit import (
    MakeStore,
    StoreProxy,
    create_session,
    incoming_for,
    key_count,
    key_exists,
    now_ms,
    open_session,
)
from tests.support.servers import command_counts, command_delta

NESTED: dict[str, Any] = {
    "user": {"id": 42, "roles": ["admin", "ops"], "prefs": {"theme": "dark", "tz": None}},
    "cart": [{"sku": "A-1", "qty": 2, "price": 9.5}, {"sku": "B-2", "qty": 1, "price": 0.0}],
    "flag": True,
    "none": None,
    "empty": {},
    "list": [],
    "ключ": "значение ✓ 🎉 日本語",
    "$dollar": "user key that looks like metadata",
    "$c": "a user key named like the creation field",
    "$$double": [1, 2, 3],
    "": "empty key",
}


def test_set_get_roundtrip_json(store: StoreProxy) -> None:
    assert store.set("h1", NESTED) is True
    assert store.get("h1") == NESTED


def test_set_replaces_whole_session(store: StoreProxy) -> None:
    store.set("h1", {"a": 1, "b": 2})
    store.set("h1", {"c": 3})
    assert store.get("h1") == {"c": 3}


def test_set_empty_session(store: StoreProxy) -> None:
    assert store.set("h1", {}) is True
    assert store.get("h1") == {}
    assert store.length() == 1


def test_get_missing_is_none(store: StoreProxy) -> None:
    assert store.get("missing") is None


@pytest.mark.parametrize("ttl", [0, -1, -0.5])
def test_set_with_non_positive_ttl_deletes(store: StoreProxy, ttl: float) -> None:
    store.set("h1", {"a": 1})
    assert store.set("h1", {"a": 2}, ttl=ttl) is False
    assert store.get("h1") is None
    assert not key_exists(store, "h1")


def test_callable_ttl(make_store: MakeStore) -> None:
    seen: list[dict[str, Any]] = []

    def ttl(data: Any) -> float:
        seen.append(dict(data))
        return 0 if data.get("drop") else 100

    store = make_store(ttl=ttl)
    assert store.set("h1", {"a": 1}) is True
    assert store.set("h2", {"drop": True}) is False
    assert store.get("h1") == {"a": 1}
    assert store.get("h2") is None
    assert {"a": 1} in seen


def test_destroy_counts_and_is_idempotent(store: StoreProxy) -> None:
    for h in ("a", "b", "c"):
        store.set(h, {"h": h})
    assert store.destroy("a", "b", "missing") == 2
    assert store.destroy("a", "b", "missing") == 0
    assert store.destroy() == 0
    assert store.get("a") is None and store.get("b") is None
    assert store.get("c") == {"h": "c"}
    assert store.destroy("c") == 1
    assert store.length() == 0


def test_touch(store: StoreProxy) -> None:
    store.set("h1", {"a": 1})
    assert store.touch("h1") is True
    assert store.touch("h1", ttl=50) is True
    assert store.get("h1") == {"a": 1}
    assert store.touch("missing") is False
    assert not key_exists(store, "missing")  # touch never creates


def test_ids_over_many_scan_pages(make_store: MakeStore) -> None:
    store = make_store(scan_count=10)
    handles = {f"h{i:03d}" for i in range(250)}
    for h in handles:
        store.set(h, {"n": h})
    before = command_counts(store.raw) if store.raw is not None else {}
    ids = list(store.ids())
    if store.raw is not None:
        assert command_delta(before, command_counts(store.raw))["scan"] > 5  # many pages
    assert len(ids) == len(set(ids)) == 250
    assert set(ids) == handles
    assert store.length() == 250


def test_all_returns_handle_and_data(make_store: MakeStore) -> None:
    store = make_store(scan_count=7)
    expected = {f"h{i}": {"i": i, "nested": {"x": [i]}} for i in range(40)}
    for h, data in expected.items():
        store.set(h, data)
    pairs = list(store.all())
    assert len(pairs) == 40
    assert dict(pairs) == expected


def test_empty_listing(store: StoreProxy) -> None:
    assert list(store.ids()) == []
    assert list(store.all()) == []
    assert store.length() == 0
    assert store.clear() == 0


def test_length(store: StoreProxy) -> None:
    for i in range(5):
        store.set(f"h{i}", {})
    assert store.length() == 5
    store.destroy("h0")
    assert store.length() == 4


def _neighbour(store: StoreProxy, prefix: str) -> Any:
    """A store with another prefix on the same backend (sync interface)."""
    if store.kind == "memory":
        return RedisStore(store.inner.client, prefix=prefix)
    assert store.raw is not None
    return RedisStore(store.raw, prefix=prefix)


def test_clear_deletes_only_our_prefix(store: StoreProxy) -> None:
    for i in range(30):
        store.set(f"h{i}", {"i": i})
    others = [_neighbour(store, p) for p in ("other:", "sess:sub:", "sess")]
    for other in others:
        other.set("x", {"keep": True})
    if store.raw is not None:
        store.raw.set("other:x", b"plain")
        store.raw.set("sess:plain", b"no braces")
        store.raw.hset("sess:{", mapping={"a": "b"})
    assert store.clear() == 30
    assert store.length() == 0
    assert list(store.ids()) == []
    for other in others:
        assert other.get("x") == {"keep": True}
        assert list(other.ids()) == ["x"]
    if store.raw is not None:
        assert store.raw.get("other:x") == b"plain"
        assert store.raw.get("sess:plain") == b"no braces"
        assert store.raw.exists("sess:{") == 1
        assert key_count(store.raw) == 3 + 3
    assert store.clear() == 0


def test_glob_characters_in_prefix_are_literal(make_store: MakeStore) -> None:
    store = make_store(prefix="s*[1]:")
    for h in ("a", "b"):
        store.set(h, {"h": h})
    # Keys a glob "s*[1]:{*}" would match, under other prefixes.
    others = [_neighbour(store, p) for p in ("sX1:", "s1:", "s*1:", "s?[1]:")]
    for other in others:
        other.set("z", {"other": True})
    assert sorted(store.ids()) == ["a", "b"]
    assert dict(store.all()) == {"a": {"h": "a"}, "b": {"h": "b"}}
    assert store.length() == 2
    assert store.clear() == 2
    for other in others:
        assert other.get("z") == {"other": True}
    if store.raw is not None:
        assert key_count(store.raw) == len(others)
        assert store.raw.exists(b"s*[1]:{a}") == 0


def test_key_layout(store: StoreProxy) -> None:
    assert store.layout.key("abc") == "sess:{abc}"
    if store.raw is not None:
        store.set("abc", {"a": 1})
        assert store.raw.type("sess:{abc}") == b"hash"


# -- engine plans through load() / commit() -----------------------------------------------


def test_engine_create_load_update(store: StoreProxy) -> None:
    engine = store.engine()
    session = create_session(store, engine, **NESTED)
    sid = session.id
    again = open_session(store, engine, sid)
    assert not again.is_new
    assert dict(again) == NESTED
    again["counter"] = 1
    del again["flag"]
    plan = engine.plan(again, now_ms())
    assert isinstance(plan, Write) and not plan.create
    assert store.commit(plan).applied
    expected = {**NESTED, "counter": 1}
    del expected["flag"]
    assert store.get(handle_for(sid)) == expected
    assert dict(open_session(store, engine, sid)) == expected


def test_commit_none_plan(store: StoreProxy) -> None:
    assert store.commit(None).applied is True


def test_commit_returns_bool(store: StoreProxy) -> None:
    """commit() is annotated and documented `-> bool`: every plan kind answers a real bool."""
    engine = store.engine()
    now = now_ms()
    session = engine.new_session(now)
    session["a"] = 1
    create = engine.plan(session, now)
    assert isinstance(create, Write)
    results = {
        "create": store.commit(create).applied,
        "update": store.commit(
            Write(handle=create.handle, fields={"b": b"2"}, delete=(), ttl_ms=60_000, create=False)
        ).applied,
        "update-missing": store.commit(
            Write(handle="missing", fields={"b": b"2"}, delete=(), ttl_ms=60_000, create=False)
        ).applied,
        "touch": store.commit(Touch(handle=create.handle, ttl_ms=60_000)).applied,
        "touch-missing": store.commit(Touch(handle="missing", ttl_ms=60_000)).applied,
        "destroy": store.commit(Destroy(handle=create.handle)).applied,
    }
    assert results == {
        "create": True,
        "update": True,
        "update-missing": False,
        "touch": True,
        "touch-missing": False,
        "destroy": True,
    }
    assert {name: type(value) for name, value in results.items()} == dict.fromkeys(results, bool)


def test_update_of_missing_session_creates_nothing(store: StoreProxy) -> None:
    engine = store.engine()
    session = create_session(store, engine, a=1)
    handle = handle_for(session.id)
    loaded = open_session(store, engine, session.id)
    loaded["b"] = 2
    plan = engine.plan(loaded, now_ms())
    assert isinstance(plan, Write) and plan.create is False
    assert store.destroy(handle) == 1  # a concurrent logout
    assert not store.commit(plan).applied
    assert store.get(handle) is None
    assert not key_exists(store, handle)  # no resurrection, not even a partial hash
    assert store.length() == 0


def test_plain_update_write_on_missing_key(store: StoreProxy) -> None:
    plan = Write(handle="nobody", fields={"a": b"1"}, delete=("b",), ttl_ms=60_000, create=False)
    assert not store.commit(plan).applied
    assert not key_exists(store, "nobody")
    assert store.length() == 0


def test_regenerate_replaces_old_key(store: StoreProxy) -> None:
    engine = store.engine()
    session = create_session(store, engine, user="alice")
    old_handle = handle_for(session.id)
    loaded = open_session(store, engine, session.id)
    loaded.regenerate()
    loaded["step"] = 2
    plan = engine.plan(loaded, now_ms())
    assert isinstance(plan, Write) and plan.create and plan.regenerated_from == old_handle
    assert plan.handle != old_handle
    assert store.commit(plan).applied
    assert not key_exists(store, old_handle)
    assert store.get(plan.handle) == {"user": "alice", "step": 2}
    assert list(store.ids()) == [plan.handle]


def test_regenerate_when_old_key_is_gone(store: StoreProxy) -> None:
    engine = store.engine()
    session = create_session(store, engine, user="alice")
    old_handle = handle_for(session.id)
    loaded = open_session(store, engine, session.id)
    loaded.regenerate()
    plan = engine.plan(loaded, now_ms())
    assert isinstance(plan, Write) and plan.regenerated_from == old_handle
    store.destroy(old_handle)  # logged out elsewhere meanwhile
    assert not store.commit(plan).applied
    assert not key_exists(store, plan.handle)
    assert store.length() == 0


def test_resent_regenerate_is_idempotent(store: StoreProxy) -> None:
    engine = store.engine()
    session = create_session(store, engine, user="alice")
    old_handle = handle_for(session.id)
    loaded = open_session(store, engine, session.id)
    loaded.regenerate()
    plan = engine.plan(loaded, now_ms())
    assert isinstance(plan, Write)
    assert store.commit(plan).applied
    assert store.commit(plan).applied  # the reply was lost and redis-py sent it again
    assert not key_exists(store, old_handle)
    assert store.get(plan.handle) == {"user": "alice"}
    assert store.length() == 1


def test_touch_plan(store: StoreProxy) -> None:
    engine = store.engine()
    session = create_session(store, engine, a=1)
    handle = handle_for(session.id)
    assert store.commit(Touch(handle=handle, ttl_ms=60_000)).applied is True
    assert not store.commit(Touch(handle="missing", ttl_ms=60_000)).applied
    assert not key_exists(store, "missing")
    assert store.get(handle) == {"a": 1}


def test_touch_plan_from_engine(store: StoreProxy) -> None:
    engine = store.engine()
    session = create_session(store, engine, a=1)
    loaded = open_session(store, engine, session.id)
    loaded.touch()
    plan = engine.plan(loaded, now_ms())
    assert isinstance(plan, Touch)
    assert store.commit(plan).applied
    store.destroy(plan.handle)
    assert not store.commit(plan).applied


def test_destroy_plan(store: StoreProxy) -> None:
    engine = store.engine()
    session = create_session(store, engine, a=1)
    loaded = open_session(store, engine, session.id)
    loaded.destroy()
    plan = engine.plan(loaded, now_ms())
    assert isinstance(plan, Destroy)
    assert store.commit(plan).applied
    assert store.get(plan.handle) is None
    assert store.commit(plan).applied  # idempotent
    assert open_session(store, engine, session.id).is_new


def test_load_missing_and_unknown(store: StoreProxy) -> None:
    engine = store.engine()
    sid = new_id()
    spec = engine.load_spec(incoming_for(sid), now_ms())
    assert spec is not None
    assert store.load(spec) is None
    session = open_session(store, engine, sid)
    assert session.is_new and session.id != sid  # never adopts an unknown id


def test_load_reply_fields(store: StoreProxy) -> None:
    engine = store.engine()
    session = create_session(store, engine, a=1, **{"$x": 2})
    spec = engine.load_spec(incoming_for(session.id), now_ms())
    assert spec is not None
    loaded = store.load(spec)
    assert loaded is not None and not loaded.foreign
    assert loaded.fields[b"a"] == b"1"
    assert loaded.fields[b"$$x"] == b"2"
    assert b"$c" in loaded.fields
    assert 0 < loaded.pttl_ms <= 86_400_000


def test_msgpack_serializer(make_store: MakeStore) -> None:
    store = make_store(serializer=MsgpackSerializer())
    data = {"bytes": b"\x00\xff", "n": 1, "nested": {"l": [1, "two", None]}, "$k": "v"}
    assert store.set("h1", data) is True
    assert store.get("h1") == data
    assert dict(store.all()) == {"h1": data}
    engine = store.engine()
    session = create_session(store, engine, blob=b"\x01\x02", text="é")
    loaded = open_session(store, engine, session.id)
    assert dict(loaded) == {"blob": b"\x01\x02", "text": "é"}


def test_max_size_enforced_by_set(make_store: MakeStore) -> None:
    store = make_store(max_size=100)
    store.set("h1", {"old": 1})
    with pytest.raises(SessionTooLargeError) as info:
        store.set("h1", {"x": "a" * 200})
    assert info.value.limit == 100 and info.value.size > 100
    assert store.get("h1") == {"old": 1}  # the old data is untouched
    with pytest.raises(SessionTooLargeError):
        store.set("h2", {"x": "a" * 200})
    assert store.get("h2") is None
    assert not key_exists(store, "h2")
    assert store.length() == 1


def test_stored_session_over_max_size_reads_as_missing(make_store: MakeStore) -> None:
    big = make_store(max_size=10_000)
    big.set("h1", {"x": "a" * 5000})
    if big.kind == "memory":
        small = RedisStore(big.inner.client, max_size=100)
    else:
        assert big.raw is not None
        small = RedisStore(big.raw, max_size=100)
    assert small.get("h1") is None
    assert dict(small.all()) == {}
    assert big.get("h1") == {"x": "a" * 5000}
