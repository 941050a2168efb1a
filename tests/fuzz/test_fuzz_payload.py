"""Fuzzing the stored payload: whatever a session's Redis hash holds, a request with a valid
cookie for it is answered (never a 5xx), and the session is either exactly the stored data
(when the hash is a well-formed record of our layout) or a new empty session under a NEW id.
Nothing is ever unpickled. The same at the engine level, without I/O, for both serializers.
"""

from __future__ import annotations

import _pickle
import copy
import json
import pickle  # noqa: TID251 - only to write pickle-looking payloads and to spy on loads
import time
from collections.abc import Iterator
from typing import Any

import msgpack
import orjson
import pytest
import redis
from hypothesis import event, example, given
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from redis_sessions import JSONSerializer, MsgpackSerializer
from redis_sessions.engine import Incoming, Loaded, handle_for, new_id
from tests.fuzz.fuzzkit import fuzz, make_asgi, make_engine

DAY_MS = 86_400_000
LIFETIME_MS = 30 * DAY_MS  # the default SessionConfig.lifetime
MAX_SIZE = 65536  # the default store max_size
MARGIN_MS = 10_000  # a created time this close to the lifetime's end may go either way

# -- what a hash may hold ------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=1).encode()  # valid, but not orjson's canonical form


def _orjson(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # an int over 64 bits
        return _json(value)


def _msgpack(value: Any) -> bytes:
    try:
        return msgpack.packb(value, use_bin_type=True)
    except OverflowError:  # an int over 64 bits
        return _json(value)


payloads = st.one_of(
    json_values.map(_orjson),
    json_values.map(_json),
    json_values.map(_msgpack),
    st.tuples(json_values, st.integers(0, pickle.HIGHEST_PROTOCOL)).map(
        lambda a: pickle.dumps(a[0], protocol=a[1])
    ),
    st.binary(max_size=40).map(lambda b: b"\x80\x04\x95" + b),
    st.binary(max_size=64),
    st.sampled_from(
        [
            b"",
            b"{",
            b"[1,",
            b"NaN",
            b"Infinity",
            b"-Infinity",
            b"1e999",
            b"'a'",
            b"nul",
            b"[" * 5000,
            b"\xef\xbb\xbf1",
            b"1 2",
            b'"\xff"',
            b'"\\ud800"',
            b"\x00",
            b"1" * 5000,
            b'{"a":1,"a":2}',
        ]
    ),
    st.integers(1, 300 * 1024).map(lambda n: b'"' + b"a" * n + b'"'),  # valid, maybe too big
    st.integers(1, 300 * 1024).map(lambda n: b"\xff" * n),
)
field_names = st.one_of(
    st.text(max_size=12).map(str.encode),
    st.text(max_size=12).map(lambda t: ("$" + t).encode()),
    st.text(max_size=12).map(lambda t: ("$$" + t).encode()),
    st.binary(max_size=12),
    st.sampled_from(
        [b"$c", b"$t", b"$", b"$$", b"", b"user", b"$$c", b"\xff", b"$\xff", b"$$\xff"]
    ),
)
# `$c` relative to the request's clock (so an example means the same thing in every run):
# ("rel", ms before now, suffix), ("raw", bytes), or None (missing).
created_specs = st.one_of(
    st.none(),
    st.tuples(
        st.just("rel"),
        st.integers(-DAY_MS, 40 * DAY_MS),
        st.sampled_from([b"", b"", b"", b".5", b".0", b" ", b"_0", b"x", b"e0"]),
    ),
    st.tuples(
        st.just("raw"),
        st.one_of(
            st.binary(max_size=20),
            st.sampled_from([b"0", b"-1", b"abc", b"1e13", b"9" * 5000, b"0x10", b"", b"nan"]),
        ),
    ),
)
# Half the time, a record as we write it (so the "decoded data" branch is well exercised).
good_bases = st.dictionaries(
    st.one_of(st.text(max_size=8), st.text(max_size=8).map(lambda t: "$" + t)).map(
        lambda k: ("$" + k if k.startswith("$") else k).encode()
    ),
    json_values.map(_orjson) | json_values.map(_json),
    max_size=5,
)
bases = st.one_of(good_bases, st.dictionaries(field_names, payloads, max_size=6))
good_created = st.tuples(st.just("rel"), st.integers(0, 20 * DAY_MS), st.just(b""))
any_created = st.one_of(good_created, created_specs)
ttl_values = st.one_of(
    st.none(),
    st.binary(max_size=8),
    st.sampled_from(
        [b"1.5", b"0", b"-1", b"abc", b"1e20", b"86400000", b"inf", b"nan", b"3600000.5"]
    ),
)


def build_fields(
    base: dict[bytes, bytes], created: Any, ttl: bytes | None, now_ms: int
) -> dict[bytes, bytes]:
    fields = dict(base)
    if created is not None:
        if created[0] == "rel":
            fields[b"$c"] = str(now_ms - created[1]).encode() + created[2]
        else:
            fields[b"$c"] = created[1]
    if ttl is not None:
        fields[b"$t"] = ttl
    return fields


_ABSENT = object()


def expected_data(fields: dict[bytes, bytes], now_ms: int, loads: Any) -> Any:
    """The session data a well-formed record holds, None when the record is not well-formed
    (or past its lifetime), `_ABSENT` when the outcome is legitimately either (at the edge of
    the lifetime). This is the layout's specification, written independently of the code."""
    if sum(len(k) + len(v) for k, v in fields.items()) > MAX_SIZE:
        return None
    data: dict[str, Any] = {}
    created = None
    for raw_name, value in fields.items():
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if name.startswith("$$"):
            key = name[1:]
        elif name.startswith("$"):
            if name == "$c":
                try:
                    created = int(value)
                except ValueError:
                    return None
            continue
        else:
            key = name
        try:
            data[key] = loads(value)
        except Exception:
            return None
    if created is None:
        return None
    left = created + LIFETIME_MS - now_ms
    if abs(left) < MARGIN_MS:
        return _ABSENT
    return data if left > 0 else None


def msgpack_loads(value: bytes) -> Any:
    return msgpack.unpackb(value, raw=False, strict_map_key=False)


def check_outcome(
    expected: Any,
    data: dict[str, Any],
    sid: str,
    got_id: str,
    is_new: bool,
    fields: dict[bytes, bytes],
) -> None:
    if currently_in_test_context():  # the statistics of --hypothesis-show-statistics
        event(
            "stored record: "
            + (
                "edge of lifetime"
                if expected is _ABSENT
                else "unreadable"
                if expected is None
                else "well-formed"
            )
        )
    if expected is _ABSENT:
        assert (not is_new and got_id == sid) or (is_new and data == {} and got_id != sid)
    elif expected is None:
        assert is_new, "an unreadable record was adopted"
        assert data == {}
        assert got_id != sid, "the cookie's id was kept for a new session (fixation)"
    else:
        assert not is_new, f"a well-formed record was not loaded: {sorted(fields)[:10]}"
        assert got_id == sid
        assert data == expected


# -- pickle must never run ---------------------------------------------------------------


@pytest.fixture
def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Replace every way to unpickle with a spy; yields the list of calls."""
    calls: list[str] = []

    def spy(name: str) -> Any:
        def called(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            raise AssertionError(f"{name} was called on a stored payload")

        return called

    for module in (pickle, _pickle):
        for name in ("loads", "load", "Unpickler", "_loads", "_load", "_Unpickler"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, spy(f"{module.__name__}.{name}"))
    yield calls
    assert calls == []


# -- through the ASGI adapter ------------------------------------------------------------


@pytest.fixture
def peek(redis_url: str, clean_redis: redis.Redis) -> Iterator[tuple[Any, list[Any]]]:
    """An ASGI client whose /get route records (data, id, is_new) of the session it got."""
    seen: list[tuple[dict[str, Any], str, bool]] = []

    def spy(session: Any) -> None:
        seen.append((copy.deepcopy(dict(session)), session.id, session.is_new))

    http, _store = make_asgi(redis_url, spy)
    with http:
        yield http, seen


def request_stored(
    peek: tuple[Any, list[Any]],
    redis_client: redis.Redis,
    base: dict[bytes, bytes],
    created: Any,
    ttl: bytes | None,
) -> None:
    """Store a hash under a fresh id, request with a valid cookie for it, check the outcome."""
    http, seen = peek
    seen.clear()
    sid = new_id()
    key = f"sess:{{{handle_for(sid)}}}"
    now = int(time.time() * 1000)
    fields = build_fields(base, created, ttl, now)
    if fields:
        redis_client.hset(key, mapping=fields)  # type: ignore[arg-type]
    try:
        cookie = f"session={ENGINES['json'].signer.sign(sid)}"
        response = http.get("/get", headers={"cookie": cookie})
        assert 200 <= response.status_code < 300, (response.status_code, sorted(fields)[:10])
        assert len(seen) == 1
        data, got_id, is_new = seen[0]
        check_outcome(expected_data(fields, now, orjson.loads), data, sid, got_id, is_new, fields)
    finally:
        redis_client.delete(key)


@fuzz(60)
@given(base=bases, created=any_created, ttl=ttl_values)
@example(base={b"$$x": b'{"$c":1}', b"$c": b"x", b"\xff": b"1"}, created=("rel", 1, b""), ttl=None)
@example(base={b"p": pickle.dumps({"a": 1})}, created=("rel", 0, b""), ttl=None)
@example(base={b"ok": b'"x"', b"$t": b"60000"}, created=("rel", 5, b""), ttl=None)
@example(base={b"big": b'"' + b"a" * 70_000 + b'"'}, created=("rel", 0, b""), ttl=None)
def test_asgi_any_stored_hash(
    peek: tuple[Any, list[Any]],
    clean_redis: redis.Redis,
    no_unpickling: list[str],
    base: dict[bytes, bytes],
    created: Any,
    ttl: bytes | None,
) -> None:
    request_stored(peek, clean_redis, base, created, ttl)


EXPONENTS = b"[" + b",".join([b"1e9"] * 12_000) + b"]"  # 48 KiB stored, 156 KiB re-serialized


@pytest.mark.parametrize(
    ("base", "created", "ttl"),
    [
        pytest.param({}, None, b".1", id="only-fractional-$t"),  # what the property shrank to
        pytest.param({b"a": b"1"}, ("rel", 0, b""), b"1.5", id="fractional-$t"),
        pytest.param({b"a": b"1"}, None, b"1e20", id="huge-$t-no-$c"),
        pytest.param({b"a": b"1"}, ("raw", b"9" * 400), b"0", id="huge-$c-zero-$t"),
        pytest.param(
            {b"a": b"1"}, ("rel", 29 * DAY_MS + 3_600_000, b".5"), None, id="fractional-$c-last-day"
        ),
        pytest.param({b"list": EXPONENTS}, ("rel", 0, b""), None, id="reserialized-over-max-size"),
    ],
)
def test_asgi_stored_hash_found_by_fuzzing(
    peek: tuple[Any, list[Any]],
    clean_redis: redis.Redis,
    no_unpickling: list[str],
    base: dict[bytes, bytes],
    created: Any,
    ttl: bytes | None,
) -> None:
    """Minimal inputs the property above found (or that its strategies aim at): each must be
    answered 2xx like any other stored hash."""
    request_stored(peek, clean_redis, base, created, ttl)


# -- at the engine level -----------------------------------------------------------------

NOW = 1_800_000_000_000
ENGINES = {"json": make_engine(JSONSerializer()), "msgpack": make_engine(MsgpackSerializer())}
ORACLES = {"json": orjson.loads, "msgpack": msgpack_loads}
packed = json_values.map(_msgpack)


@fuzz(100)
@given(
    kind=st.sampled_from(sorted(ENGINES)),
    base=bases | st.dictionaries(field_names, st.one_of(payloads, packed), max_size=8),
    created=any_created,
    ttl=ttl_values,
    pttl=st.integers(-2, 2**63),
    foreign=st.sampled_from([False, False, False, True]),
)
@example(
    kind="json",
    base={b"$$x": b"1", b"x": b"2"},
    created=("rel", 0, b""),
    ttl=None,
    pttl=-1,
    foreign=False,
)
@example(
    kind="msgpack", base={b"k": b"\xc1"}, created=("rel", 0, b""), ttl=None, pttl=5, foreign=False
)
def test_engine_open_session_any_fields(
    no_unpickling: list[str],
    kind: str,
    base: dict[bytes, bytes],
    created: Any,
    ttl: bytes | None,
    pttl: int,
    foreign: bool,
) -> None:
    engine = ENGINES[kind]
    sid = new_id()
    incoming = Incoming(sid, handle_for(sid), True, False)
    fields = build_fields(base, created, ttl, NOW)
    session = engine.open_session(
        incoming, Loaded(pttl_ms=pttl, fields=fields, foreign=foreign), NOW
    )
    expected = None if foreign else expected_data(fields, NOW, ORACLES[kind])
    check_outcome(expected, dict(session), sid, session.id, session.is_new, fields)
    assert no_unpickling == []
