"""Atomic helpers (`Session.incr`, `Session.setdefault`) and the per-session lock, at the store
level, for every runner (sync, asyncio, memory): the flows an adapter drives, step by step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from redis_sessions import MsgpackSerializer, Session, SessionLockError, SessionStateError
from redis_sessions.engine import Destroy, Release, SessionEngine, Write, handle_for
from tests.store.storekit import MakeStore, StoreProxy, create_session, incoming_for, now_ms


def begin(store: StoreProxy, engine: SessionEngine, sid: str, *, lock: bool = False) -> Session:
    """The first half of a request: the load (taking the lock when asked)."""
    incoming = incoming_for(sid)
    now = now_ms()
    spec = engine.load_spec(incoming, now, lock=lock)
    assert spec is not None
    return engine.open_session(incoming, store.load(spec), now)


def end(store: StoreProxy, engine: SessionEngine, session: Session, *, final: bool = True) -> Any:
    """The second half: plan, commit, record. Returns the plan."""
    plan = engine.plan(session, now_ms(), final=final)
    engine.committed(session, plan, store.commit(plan))
    return plan


def request(
    store: StoreProxy,
    engine: SessionEngine,
    sid: str,
    work: Callable[[Session], Any],
    *,
    lock: bool = False,
) -> Session:
    session = begin(store, engine, sid, lock=lock)
    work(session)
    end(store, engine, session)
    return session


def lock_key(store: StoreProxy, sid: str) -> str:
    return str(store.layout.lock_key(handle_for(sid)))


def test_interleaved_increments_all_count(store: StoreProxy) -> None:
    engine = store.engine()
    sid = create_session(store, engine, n=10).id
    first, second = begin(store, engine, sid), begin(store, engine, sid)
    assert first.incr("n") == 11
    assert second.incr("n", 5) == 15  # what this request knows: it loaded 10
    plan = end(store, engine, first)
    assert isinstance(plan, Write) and plan.incr == (("n", 1),) and plan.fields == {}
    end(store, engine, second)
    assert second["n"] == 16  # after the save: the value Redis computed
    assert store.get(handle_for(sid)) == {"n": 16}


def test_increment_of_a_missing_key_starts_at_zero_and_keeps_other_changes(
    store: StoreProxy,
) -> None:
    engine = store.engine()
    sid = create_session(store, engine, a=1, gone=True).id

    def work(session: Session) -> None:
        session["a"] = 2
        del session["gone"]
        assert session.incr("visits", 3) == 3
        session.incr("visits")

    session = request(store, engine, sid, work)
    assert session["visits"] == 4
    assert store.get(handle_for(sid)) == {"a": 2, "visits": 4}


def test_increment_after_an_assignment_or_a_delete_is_an_assignment(store: StoreProxy) -> None:
    engine = store.engine()
    sid = create_session(store, engine, n=100, m=7).id
    other = begin(store, engine, sid)
    other.incr("n", 1000)
    other.incr("m", 1000)
    end(store, engine, other)

    def work(session: Session) -> None:
        session["n"] = 1  # plain assignment: last writer wins ...
        session.incr("n")  # ... and the increment rides on it
        del session["m"]
        session.incr("m")  # a deleted key starts again from 0

    session = begin(store, engine, sid)
    dict.__setitem__(session, "m", 7)  # as this request loaded it, before the other one's save
    work(session)
    plan = end(store, engine, session)
    assert isinstance(plan, Write) and plan.incr == ()
    assert store.get(handle_for(sid)) == {"n": 2, "m": 1}


def test_increment_of_a_new_session_is_a_plain_write(store: StoreProxy) -> None:
    engine = store.engine()
    session = engine.new_session(now_ms())
    assert session.incr("n") == 1
    plan = end(store, engine, session)
    assert isinstance(plan, Write) and plan.create and plan.incr == () and plan.nonce is None
    assert store.get(handle_for(session.id)) == {"n": 1}


def test_increment_rejects_non_integers(store: StoreProxy) -> None:
    engine = store.engine()
    sid = create_session(store, engine, s="x", f=1.5, b=True).id
    session = begin(store, engine, sid)
    for key in ("s", "f", "b"):
        with pytest.raises(TypeError, match="not int"):
            session.incr(key)
    with pytest.raises(TypeError, match="by must be an int"):
        session.incr("n", 1.0)  # type: ignore[arg-type]
    assert not session.is_modified


def test_increment_of_a_value_changed_meanwhile_into_a_string_refuses_the_whole_save(
    store: StoreProxy,
) -> None:
    engine = store.engine()
    sid = create_session(store, engine, n=1, a=1).id
    session = begin(store, engine, sid)
    store.set(handle_for(sid), {"n": "one", "a": 1})  # another writer, another type
    session["a"] = 2
    session.incr("n")
    with pytest.raises(SessionStateError, match="'n' is not an integer"):
        end(store, engine, session)
    assert store.get(handle_for(sid)) == {"n": "one", "a": 1}  # nothing written


def test_increments_with_msgpack(make_store: MakeStore) -> None:
    store = make_store(serializer=MsgpackSerializer())
    engine = store.engine()
    sid = create_session(store, engine, n=2**40, neg=-3).id
    first, second = begin(store, engine, sid), begin(store, engine, sid)
    first.incr("n")
    first.incr("neg", -1)
    end(store, engine, first)
    second.incr("n", 2)
    end(store, engine, second)
    assert store.get(handle_for(sid)) == {"n": 2**40 + 3, "neg": -4}
    assert second["n"] == 2**40 + 3


def test_setdefault_first_writer_wins(store: StoreProxy) -> None:
    engine = store.engine()
    sid = create_session(store, engine, a=1).id
    first, second = begin(store, engine, sid), begin(store, engine, sid)
    assert first.setdefault("theme", "dark") == "dark"
    assert second.setdefault("theme", {"name": "light"}) == {"name": "light"}
    assert second.setdefault("a", 5) == 1  # present: no write
    end(store, engine, first)
    plan = end(store, engine, second)
    assert isinstance(plan, Write) and plan.setnx == (("theme", b'{"name":"light"}'),)
    assert second["theme"] == "dark"  # after the save: the stored value won
    assert store.get(handle_for(sid)) == {"a": 1, "theme": "dark"}


def test_setdefault_then_assignment_is_an_assignment(store: StoreProxy) -> None:
    engine = store.engine()
    sid = create_session(store, engine, theme="dark").id
    session = begin(store, engine, sid)
    del session["theme"]
    session.setdefault("theme", "light")
    session["theme"] = "blue"
    plan = end(store, engine, session)
    assert isinstance(plan, Write) and plan.setnx == () and plan.fields == {"theme": b'"blue"'}
    assert store.get(handle_for(sid)) == {"theme": "blue"}


def test_lock_is_taken_with_the_read_and_freed_with_the_save(store: StoreProxy) -> None:
    engine = store.engine(lock_timeout=0)
    sid = create_session(store, engine, n=1).id
    holder = begin(store, engine, sid, lock=True)
    assert holder._lock is not None
    with pytest.raises(SessionLockError, match="lock timeout"):
        begin(store, engine, sid, lock=True)  # lock_timeout 0: no wait
    begin(store, engine, sid)  # a request without the lock is not held back
    holder["n"] = 2
    end(store, engine, holder, final=False)  # a save mid-request keeps the lock
    with pytest.raises(SessionLockError):
        begin(store, engine, sid, lock=True)
    plan = end(store, engine, holder)
    assert isinstance(plan, Release)  # nothing left to write: only the release
    assert holder._lock is None
    nxt = begin(store, engine, sid, lock=True)
    assert nxt["n"] == 2
    end(store, engine, nxt)


def test_lock_is_not_kept_for_a_missing_session(store: StoreProxy) -> None:
    engine = store.engine(lock_timeout=0)
    session = begin(store, engine, "x" * 43, lock=True)
    assert session.is_new and session._lock is None
    begin(store, engine, "x" * 43, lock=True)  # free: the read released it at once


def test_save_after_the_lock_expired_is_refused(redis_store: StoreProxy) -> None:
    store = redis_store
    engine = store.engine(lock_ttl=30)
    sid = create_session(store, engine, n=1).id
    holder = begin(store, engine, sid, lock=True)
    assert store.raw is not None
    store.raw.delete(lock_key(store, sid))  # as if its TTL had run out ...
    other = begin(store, engine, sid, lock=True)  # ... and another request took it
    other["n"] = 5
    holder["n"] = 2
    with pytest.raises(SessionLockError, match="lock lost"):
        end(store, engine, holder)
    end(store, engine, other)
    assert store.get(handle_for(sid)) == {"n": 5}  # the holder's late write never landed


def test_lock_ttl_bounds_a_crashed_holder(redis_store: StoreProxy) -> None:
    store = redis_store
    engine = store.engine(lock_ttl=30)
    sid = create_session(store, engine, n=1).id
    begin(store, engine, sid, lock=True)  # never ends: a crashed worker
    assert store.raw is not None
    assert 0 < store.raw.pttl(lock_key(store, sid)) <= 30_000


def test_destroy_and_regenerate_under_the_lock_free_it(store: StoreProxy) -> None:
    engine = store.engine(lock_timeout=0)
    sid = create_session(store, engine, n=1).id
    session = begin(store, engine, sid, lock=True)
    session.regenerate()
    plan = end(store, engine, session)
    assert isinstance(plan, Write) and plan.regenerated_from == handle_for(sid)
    assert plan.hold is not None and plan.hold.release
    assert store.get(handle_for(sid)) is None
    new_sid = session.id
    session = begin(store, engine, new_sid, lock=True)
    session.destroy()
    plan = end(store, engine, session)
    assert isinstance(plan, Destroy) and plan.hold is not None and plan.hold.release
    assert store.get(handle_for(new_sid)) is None
    begin(store, engine, sid, lock=True)  # neither lock is left behind
    begin(store, engine, new_sid, lock=True)


def test_regenerate_keeps_what_other_requests_wrote_meanwhile(store: StoreProxy) -> None:
    engine = store.engine()
    sid = create_session(store, engine, cart=["book"], drop="me").id
    login = begin(store, engine, sid)
    other = begin(store, engine, sid)  # a request with the old id, racing the login
    other["cart"] = ["book", "pen"]
    other.incr("views")
    end(store, engine, other)
    login.regenerate()
    login["user"] = "alice"
    del login["drop"]
    end(store, engine, login)
    assert store.get(handle_for(sid)) is None
    assert store.get(handle_for(login.id)) == {"cart": ["book", "pen"], "views": 1, "user": "alice"}
