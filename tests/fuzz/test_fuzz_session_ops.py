"""Fuzzing the `Session` mapping: random sequences of set / delete / get / nested mutation /
clear, over several requests, saved with the engine's delta plans into a `MemoryStore` and
reloaded, always give back exactly the dict a plain model holds; and once a plan is committed,
planning again writes nothing.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from redis_sessions import JSONSerializer, MemoryStore, MsgpackSerializer, SessionConfig
from redis_sessions.engine import Destroy, Incoming, SessionEngine, handle_for
from tests.fuzz.fuzzkit import SECRET, fuzz

NOW = 1_800_000_000_000

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
keys = st.sampled_from(["a", "b", "cart", "", "$c", "$t", "$x", "$$y", "é", "k.1"]) | st.text(
    max_size=4
)
ops = st.one_of(
    st.tuples(st.just("set"), keys, values),
    st.tuples(st.just("set"), keys, st.sampled_from([[], {}, [1], {"n": 1}])),
    st.tuples(st.just("del"), keys),
    st.tuples(st.just("get"), keys),
    st.tuples(st.just("mutate"), keys, st.text(max_size=4), values),
    st.tuples(st.just("clear")),
)
SERIALIZERS = {"json": JSONSerializer, "msgpack": MsgpackSerializer}


def apply(op: tuple[Any, ...], session: Any, model: dict[str, Any]) -> None:
    """Do `op` on the session (as an app would) and on the plain dict model."""
    kind = op[0]
    if kind == "set":
        session[op[1]] = copy.deepcopy(op[2])
        model[op[1]] = copy.deepcopy(op[2])
    elif kind == "del":
        assert (op[1] in session) == (op[1] in model)
        if op[1] in model:
            del session[op[1]]
            del model[op[1]]
    elif kind == "get":
        assert session.get(op[1]) == model.get(op[1])
    elif kind == "mutate":
        value, mirror = session.get(op[1]), model.get(op[1])
        if isinstance(value, dict):
            value[op[2]] = copy.deepcopy(op[3])
            mirror[op[2]] = copy.deepcopy(op[3])  # type: ignore[index]
        elif isinstance(value, list):
            value.append(copy.deepcopy(op[3]))
            mirror.append(copy.deepcopy(op[3]))  # type: ignore[union-attr]
    else:
        session.clear()
        model.clear()


@fuzz(80)
@given(
    rounds=st.lists(st.lists(ops, max_size=15), min_size=1, max_size=4),
    unset=st.sampled_from(["keep", "destroy"]),
    serializer=st.sampled_from(sorted(SERIALIZERS)),
)
@example(
    rounds=[[("set", "cart", [])], [("mutate", "cart", "", 1)], [("get", "cart")]],
    unset="keep",
    serializer="json",
)
@example(
    rounds=[[("set", "$c", 1), ("set", "$$y", 2)], [("del", "$c")], [("clear",)]],
    unset="keep",
    serializer="json",
)
@example(
    rounds=[[("set", "a", {"n": 1})], [("mutate", "a", "n", 1)], [("clear",)], []],
    unset="keep",
    serializer="msgpack",
)
def test_delta_saves_round_trip(
    rounds: list[list[tuple[Any, ...]]], unset: str, serializer: str
) -> None:
    store = MemoryStore(serializer=SERIALIZERS[serializer]())
    engine = SessionEngine(
        SessionConfig(secret=SECRET, unset=unset),  # type: ignore[arg-type]
        serializer=store.serializer,
        max_size=store.max_size,
    )
    model: dict[str, Any] = {}
    sid: str | None = None
    for step, round_ops in enumerate([*rounds, []]):  # a last request only reloads
        now = NOW + step * 1000
        incoming = Incoming(sid, handle_for(sid), True, False) if sid else Incoming()
        spec = engine.load_spec(incoming, now)
        session = engine.open_session(incoming, store.load(spec) if spec else None, now)
        assert dict(session) == model, f"request {step} did not get back what was saved"

        for op in round_ops:
            apply(op, session, model)
        assert dict(session) == model

        plan = engine.plan(session, now)
        result = store.commit(plan)
        assert result.applied, plan
        engine.committed(session, plan, result)
        assert engine.plan(session, now) is None, "a committed session planned another write"
        sid = session.id


def test_plan_after_unset_destroy_is_none() -> None:
    """The minimal case the property found: with ``unset="destroy"``, emptying a stored
    session plans a Destroy; once committed (e.g. by ``save()`` mid-request), planning again
    (the end of the request) must not re-create the session empty under the same handle."""
    store = MemoryStore()
    engine = SessionEngine(
        SessionConfig(secret=SECRET, unset="destroy"),
        serializer=store.serializer,
        max_size=store.max_size,
    )
    session = engine.open_session(Incoming(), None, NOW)
    session["a"] = 1
    plan = engine.plan(session, NOW)
    engine.committed(session, plan, store.commit(plan))
    incoming = Incoming(session.id, handle_for(session.id), True, False)
    spec = engine.load_spec(incoming, NOW)
    assert spec is not None
    session = engine.open_session(incoming, store.load(spec), NOW)
    del session["a"]
    plan = engine.plan(session, NOW)
    assert isinstance(plan, Destroy)
    engine.committed(session, plan, store.commit(plan))
    assert engine.plan(session, NOW) is None
