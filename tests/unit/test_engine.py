"""SessionEngine decisions, driven with hand-made store replies and chosen clock values."""

from __future__ import annotations

import logging
import math

import pytest

from redis_sessions import CookieConfig, JSONSerializer, SessionConfig, SessionTooLargeError
from redis_sessions.engine import (
    Committed,
    Destroy,
    Incoming,
    Load,
    Loaded,
    SessionEngine,
    Signer,
    Touch,
    Write,
    handle_for,
    is_secure_request,
    new_id,
)

from ._support import MAX_SIZE, NOW_MS, OLD_SECRET, SECRET, loaded, make_engine, stored_fields

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
JSON = JSONSerializer()


def cookie_header(sid: str, secret: str = SECRET, name: str = "session") -> str:
    return f"{name}={Signer(secret).sign(sid)}"


def open_stored(engine, data, *, now_ms=NOW_MS, created_ms=NOW_MS, pttl_ms=DAY_MS):
    """Open the stored session holding `data`, as an adapter would for a request."""
    sid = new_id()
    incoming = engine.read_cookie(cookie_header(sid))
    session = engine.open_session(incoming, loaded(data, created_ms, pttl_ms), now_ms)
    assert session.is_new is False
    return session, incoming


def set_cookie(headers):
    values = [v for k, v in headers if k == "set-cookie"]
    assert len(values) == 1, headers
    return values[0]


def attrs(cookie):
    return cookie.split("; ")


def run(engine, session, incoming, now_ms=NOW_MS, *, applied=True, secure=False):
    """plan -> (store) -> committed -> response_headers, as the adapters do."""
    plan = engine.plan(session, now_ms)
    result = Committed(applied)
    engine.committed(session, plan, result)
    return plan, engine.response_headers(session, incoming, plan, result, secure)


# -- 1. read_cookie -------------------------------------------------------------------------


def test_no_cookie_header_is_no_cookie(engine):
    assert engine.read_cookie(None) == Incoming()
    assert engine.read_cookie("other=1") == Incoming(cookie_present=False)


def test_tampered_cookie_is_present_but_has_no_handle(engine):
    sid = new_id()
    header = cookie_header(sid)
    tampered = header[:-1] + ("A" if header[-1] != "A" else "B")
    incoming = engine.read_cookie(tampered)
    assert incoming == Incoming(cookie_present=True)
    assert incoming.handle is None
    assert engine.load_spec(incoming, NOW_MS) is None


def test_valid_cookie_gives_the_id_and_its_handle(engine):
    sid = new_id()
    header = cookie_header(sid)
    incoming = engine.read_cookie(header)
    assert incoming == Incoming(sid, handle_for(sid), True, False, header.split("=", 1)[1])


def test_cookie_signed_with_an_old_secret_is_accepted_and_asks_for_resign():
    engine = make_engine(secret=[SECRET, OLD_SECRET])
    sid = new_id()
    incoming = engine.read_cookie(cookie_header(sid, OLD_SECRET))
    assert incoming.session_id == sid
    assert incoming.resign is True


def test_cookie_signed_with_an_unlisted_secret_is_rejected(engine):
    incoming = engine.read_cookie(cookie_header(new_id(), OLD_SECRET))
    assert incoming.cookie_present is True
    assert incoming.session_id is None


def test_cookie_is_read_under_the_configured_name():
    engine = make_engine(cookie=CookieConfig(name="sid"))
    sid = new_id()
    assert engine.read_cookie(cookie_header(sid)).cookie_present is False
    assert engine.read_cookie(cookie_header(sid, name="sid")).session_id == sid


# -- 2. load_spec ---------------------------------------------------------------------------


def test_load_spec_is_none_without_a_valid_cookie(engine):
    assert engine.load_spec(Incoming(), NOW_MS) is None
    assert engine.load_spec(Incoming(cookie_present=True), NOW_MS) is None


def test_load_spec_carries_handle_clock_and_timeouts(engine):
    sid = new_id()
    spec = engine.load_spec(engine.read_cookie(cookie_header(sid)), NOW_MS)
    assert spec == Load(
        handle=handle_for(sid),
        now_ms=NOW_MS,
        idle_ms=DAY_MS,
        lifetime_ms=30 * DAY_MS,
        touch_after_ms=60_000,
    )


def test_load_spec_with_rolling_refreshes_on_every_read():
    engine = make_engine(rolling=True, touch_after=600)
    spec = engine.load_spec(engine.read_cookie(cookie_header(new_id())), NOW_MS)
    assert spec is not None
    assert spec.touch_after_ms == 0


def test_load_spec_without_lifetime_has_zero_lifetime():
    engine = make_engine(lifetime=None, idle_timeout=90)
    spec = engine.load_spec(engine.read_cookie(cookie_header(new_id())), NOW_MS)
    assert spec is not None
    assert (spec.idle_ms, spec.lifetime_ms) == (90_000, 0)


# -- open_session ---------------------------------------------------------------------------


def test_open_session_from_a_stored_record(engine):
    session, incoming = open_stored(engine, {"user": "alice", "$x": 1}, created_ms=NOW_MS - 5000)
    assert dict(session) == {"user": "alice", "$x": 1}
    assert session.id == incoming.session_id
    assert session.created_at == (NOW_MS - 5000) / 1000
    assert session.is_modified is False


def test_no_cookie_opens_a_new_session(engine):
    session = engine.open_session(Incoming(), None, NOW_MS)
    assert session.is_new is True
    assert len(session) == 0
    assert session.created_at == NOW_MS / 1000


PICKLE_PAYLOAD = b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94K\x01s."


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        (Loaded(pttl_ms=DAY_MS, fields={}, foreign=True), "foreign"),
        (
            Loaded(pttl_ms=DAY_MS, fields={b"$c": str(NOW_MS).encode(), b"user": b"{not json"}),
            "P1 corrupt",
        ),
        (Loaded(pttl_ms=DAY_MS, fields={b"user": b'"alice"'}), "P2 missing $c"),
        (Loaded(pttl_ms=DAY_MS, fields={b"$c": b"yesterday", b"user": b'"alice"'}), "P2 bad $c"),
        (
            Loaded(pttl_ms=DAY_MS, fields={b"$c": str(NOW_MS).encode(), b"user": PICKLE_PAYLOAD}),
            "P3 pickle",
        ),
        (Loaded(pttl_ms=DAY_MS, fields={b"$c": PICKLE_PAYLOAD}), "P3 pickle as $c"),
        (
            Loaded(pttl_ms=DAY_MS, fields={b"$c": str(NOW_MS).encode(), b"\xff\xfe": b"1"}),
            "non-UTF-8 field",
        ),
        (
            Loaded(pttl_ms=DAY_MS, fields={b"$c": str(NOW_MS).encode(), b"big": b"1" * MAX_SIZE}),
            "oversize",
        ),
    ],
)
def test_unusable_stored_session_starts_a_new_session_and_warns(engine, caplog, reply, why):
    sid = new_id()
    incoming = engine.read_cookie(cookie_header(sid))
    with caplog.at_level(logging.WARNING, logger="redis_sessions"):
        session = engine.open_session(incoming, reply, NOW_MS)
    assert session.is_new is True, why
    assert len(session) == 0
    assert session.id != sid  # I2: an id the server does not hold is never adopted
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert incoming.handle[:12] in message
    assert sid not in caplog.text
    assert sid[:12] not in caplog.text
    assert incoming.handle not in message  # only a short prefix of the handle


def test_missing_stored_session_starts_a_new_session_with_a_new_id(engine, caplog):
    sid = new_id()
    incoming = engine.read_cookie(cookie_header(sid))
    with caplog.at_level(logging.DEBUG, logger="redis_sessions"):
        session = engine.open_session(incoming, None, NOW_MS)
    assert session.is_new is True
    assert session.id != sid
    assert sid not in caplog.text


def test_session_past_its_lifetime_is_never_adopted(engine, caplog):
    sid = new_id()
    incoming = engine.read_cookie(cookie_header(sid))
    created = NOW_MS - 30 * DAY_MS  # P7: exactly at the end of its 30-day lifetime
    with caplog.at_level(logging.DEBUG, logger="redis_sessions"):
        session = engine.open_session(incoming, loaded({"user": "alice"}, created), NOW_MS)
    assert session.is_new is True
    assert len(session) == 0
    assert session.id != sid
    assert sid not in caplog.text


def test_session_just_inside_its_lifetime_is_opened(engine):
    sid = new_id()
    incoming = engine.read_cookie(cookie_header(sid))
    created = NOW_MS - 30 * DAY_MS + 1
    session = engine.open_session(incoming, loaded({"user": "alice"}, created), NOW_MS)
    assert session.is_new is False
    assert session.id == sid


def test_fill_drops_unsaved_changes(engine):
    session, incoming = open_stored(engine, {"a": 1})
    session["a"] = 2
    session["b"] = 3
    engine.fill(session, incoming, loaded({"a": 1}), NOW_MS)
    assert dict(session) == {"a": 1}
    assert session.is_modified is False
    assert engine.plan(session, NOW_MS) is None


# -- 3. plan --------------------------------------------------------------------------------


def test_untouched_new_session_is_not_saved(engine):
    session = engine.open_session(Incoming(), None, NOW_MS)
    assert engine.plan(session, NOW_MS) is None


def test_new_session_with_data_is_created_with_its_creation_time(engine):
    session = engine.open_session(Incoming(), None, NOW_MS)
    session["user"] = "alice"
    plan = engine.plan(session, NOW_MS)
    assert isinstance(plan, Write)
    assert plan.create is True
    assert plan.regenerated_from is None
    assert plan.handle == handle_for(session.id)
    assert dict(plan.fields) == {"user": b'"alice"', "$c": str(NOW_MS).encode()}
    assert plan.delete == ()
    assert plan.ttl_ms == DAY_MS


def test_new_session_emptied_again_is_not_saved(engine):
    session = engine.open_session(Incoming(), None, NOW_MS)
    session["a"] = 1
    del session["a"]
    assert engine.plan(session, NOW_MS) is None


def test_save_uninitialized_stores_an_empty_new_session():
    engine = make_engine(save_uninitialized=True)
    session = engine.open_session(Incoming(), None, NOW_MS)
    plan = engine.plan(session, NOW_MS)
    assert isinstance(plan, Write)
    assert plan.create is True
    assert dict(plan.fields) == {"$c": str(NOW_MS).encode()}


def test_unmodified_existing_session_is_not_written(engine):
    session, _ = open_stored(engine, {"a": 1, "cart": [1, 2]})
    _ = session["a"], session["cart"]
    assert engine.plan(session, NOW_MS + 1000) is None


def test_resave_writes_every_field_of_an_unmodified_session():
    engine = make_engine(resave=True)
    session, incoming = open_stored(engine, {"a": 1, "b": "x"})
    plan = engine.plan(session, NOW_MS)
    assert isinstance(plan, Write)
    assert plan.handle == incoming.handle
    assert plan.create is False
    assert dict(plan.fields) == {"a": b"1", "b": b'"x"'}


def test_modified_existing_session_writes_only_changes_and_deletions(engine):
    session, incoming = open_stored(engine, {"a": 1, "b": 2, "c": 3})
    session["a"] = 10
    del session["b"]
    plan = engine.plan(session, NOW_MS)
    assert plan == Write(
        handle=incoming.handle, fields={"a": b"10"}, delete=("b",), ttl_ms=DAY_MS, create=False
    )


def test_nested_list_mutation_is_detected(engine):
    session, incoming = open_stored(engine, {"cart": [1], "other": {"x": 1}})
    session["cart"].append(2)
    _ = session["other"]  # read but unchanged: not written
    plan = engine.plan(session, NOW_MS)
    assert isinstance(plan, Write)
    assert plan.handle == incoming.handle
    assert dict(plan.fields) == {"cart": b"[1,2]"}
    assert plan.create is False


def test_nested_dict_mutation_is_detected(engine):
    session, _ = open_stored(engine, {"prefs": {"theme": "dark"}, "cart": []})
    session["prefs"]["theme"] = "light"
    plan = engine.plan(session, NOW_MS)
    assert dict(plan.fields) == {"prefs": b'{"theme":"light"}'}


def test_nested_mutation_through_get_is_detected(engine):
    session, _ = open_stored(engine, {"cart": {"items": []}})
    session.get("cart")["items"].append("book")
    plan = engine.plan(session, NOW_MS)
    assert dict(plan.fields) == {"cart": b'{"items":["book"]}'}


def test_mark_modified_key_is_rewritten_even_when_its_bytes_are_unchanged(engine):
    session, _ = open_stored(engine, {"a": 1, "b": 2})
    session.mark_modified("a")
    plan = engine.plan(session, NOW_MS)
    assert isinstance(plan, Write)
    assert dict(plan.fields) == {"a": b"1"}


def test_mark_modified_without_key_rewrites_every_field(engine):
    session, incoming = open_stored(engine, {"a": 1, "b": 2})
    session.mark_modified()
    plan = engine.plan(session, NOW_MS)
    assert plan.handle == incoming.handle
    assert plan.create is False
    assert dict(plan.fields) == {"a": b"1", "b": b"2", "$c": str(NOW_MS).encode()}


def test_dollar_prefixed_user_keys_are_escaped(engine):
    session = engine.open_session(Incoming(), None, NOW_MS)
    session["$x"] = 1
    session["$c"] = "not the creation time"
    plan = engine.plan(session, NOW_MS)
    assert plan.fields["$$x"] == b"1"
    assert plan.fields["$$c"] == b'"not the creation time"'
    assert plan.fields["$c"] == str(NOW_MS).encode()


def test_deleting_a_dollar_prefixed_key_deletes_the_escaped_field(engine):
    session, _ = open_stored(engine, {"$x": 1, "a": 2})
    del session["$x"]
    plan = engine.plan(session, NOW_MS)
    assert plan.delete == ("$$x",)


def test_regenerate_moves_the_data_to_a_new_handle_and_replaces_the_old(engine):
    session, incoming = open_stored(engine, {"user": "alice", "n": 1}, created_ms=NOW_MS - 1000)
    session.regenerate()
    plan = engine.plan(session, NOW_MS)
    assert isinstance(plan, Write)
    assert plan.create is True
    assert plan.regenerated_from == incoming.handle
    assert plan.handle != incoming.handle
    assert plan.handle == handle_for(session.id)
    assert session.id != incoming.session_id
    # The store copies the stored session to the new key: only this request's changes ride
    # on top (none here), so concurrent writes to the old id are not lost.
    assert dict(plan.fields) == {}
    session["user"] = "bob"
    del session["n"]
    plan = engine.plan(session, NOW_MS)
    assert dict(plan.fields) == {"user": b'"bob"'} and plan.delete == ("n",)


def test_regenerate_of_a_new_session_gets_an_id_never_handed_out(engine):
    session = engine.open_session(Incoming(), None, NOW_MS)
    first_id = session.id
    session["a"] = 1
    session.regenerate()
    plan = engine.plan(session, NOW_MS)
    assert plan.regenerated_from is None
    assert session.id != first_id
    assert plan.handle == handle_for(session.id)


def test_destroy_plans_a_delete_of_the_stored_session(engine):
    session, incoming = open_stored(engine, {"a": 1})
    session.destroy()
    assert engine.plan(session, NOW_MS) == Destroy(handle=incoming.handle)


def test_changes_after_destroy_are_not_saved(engine):
    session, incoming = open_stored(engine, {"a": 1})
    session.destroy()
    session["b"] = 2
    assert engine.plan(session, NOW_MS) == Destroy(handle=incoming.handle)


def test_destroy_of_a_new_session_plans_nothing(engine):
    session = engine.open_session(Incoming(), None, NOW_MS)
    session["a"] = 1
    session.destroy()
    assert engine.plan(session, NOW_MS) is None


def test_unset_destroy_deletes_a_session_emptied_by_the_app():
    engine = make_engine(unset="destroy")
    session, incoming = open_stored(engine, {"a": 1, "b": 2})
    session.clear()
    assert engine.plan(session, NOW_MS) == Destroy(handle=incoming.handle)


def test_unset_keep_saves_an_emptied_session_as_deletions(engine):
    session, incoming = open_stored(engine, {"a": 1, "b": 2})
    session.clear()
    plan = engine.plan(session, NOW_MS)
    assert isinstance(plan, Write)
    assert plan.handle == incoming.handle
    assert plan.create is False
    assert dict(plan.fields) == {}
    assert sorted(plan.delete) == ["a", "b"]


def test_rolling_plans_no_extra_touch_because_the_read_refreshed_the_ttl():
    engine = make_engine(rolling=True)
    session, _ = open_stored(engine, {"a": 1})
    assert engine.plan(session, NOW_MS) is None


def test_touch_refreshes_an_unmodified_existing_session(engine):
    session, incoming = open_stored(engine, {"a": 1})
    session.touch()
    assert engine.plan(session, NOW_MS) == Touch(handle=incoming.handle, ttl_ms=DAY_MS)


def test_touch_of_a_new_session_plans_nothing(engine):
    session = engine.open_session(Incoming(), None, NOW_MS)
    session.touch()
    assert engine.plan(session, NOW_MS) is None


def test_ttl_is_the_idle_timeout_while_far_from_the_lifetime(engine):
    session, _ = open_stored(engine, {"a": 1}, created_ms=NOW_MS - DAY_MS)
    session["a"] = 2
    assert engine.plan(session, NOW_MS).ttl_ms == DAY_MS


def test_lifetime_wins_over_the_idle_extension(engine):
    # T2: 30 days after creation the session ends, however active it is.
    created = NOW_MS - 30 * DAY_MS + HOUR_MS
    session, _ = open_stored(engine, {"a": 1}, created_ms=created)
    session["a"] = 2
    assert engine.plan(session, NOW_MS).ttl_ms == HOUR_MS
    assert engine.ttl_ms(session, NOW_MS) == min(DAY_MS, created + 30 * DAY_MS - NOW_MS)


def test_touch_is_capped_by_the_lifetime(engine):
    created = NOW_MS - 30 * DAY_MS + 5000
    session, incoming = open_stored(engine, {"a": 1}, created_ms=created)
    session.touch()
    assert engine.plan(session, NOW_MS) == Touch(handle=incoming.handle, ttl_ms=5000)


def test_write_after_the_lifetime_ended_is_a_destroy(engine):
    # T3: the lifetime ran out during the request: the save deletes instead.
    created = NOW_MS - 30 * DAY_MS + 10
    session, incoming = open_stored(engine, {"a": 1}, created_ms=created)
    session["a"] = 2
    assert engine.plan(session, NOW_MS + 10) == Destroy(handle=incoming.handle)


def test_touch_after_the_lifetime_ended_is_a_destroy(engine):
    created = NOW_MS - 30 * DAY_MS + 10
    session, incoming = open_stored(engine, {"a": 1}, created_ms=created)
    session.touch()
    assert engine.plan(session, NOW_MS + 50) == Destroy(handle=incoming.handle)


def test_without_lifetime_the_ttl_is_the_idle_timeout():
    engine = make_engine(lifetime=None, idle_timeout=120)
    session, _ = open_stored(engine, {"a": 1}, created_ms=NOW_MS - 365 * DAY_MS)
    session["a"] = 2
    plan = engine.plan(session, NOW_MS)
    assert isinstance(plan, (Write, Touch))
    assert plan.ttl_ms == 120_000


def test_callable_idle_timeout_sets_the_ttl_and_records_it():
    seen = []

    def idle(data):
        seen.append(dict(data))
        return 7200 if data.get("remember") else 600

    engine = make_engine(idle_timeout=idle)
    session = engine.open_session(Incoming(), None, NOW_MS)
    session["remember"] = True
    plan = engine.plan(session, NOW_MS)
    assert isinstance(plan, Write)
    assert plan.ttl_ms == 7_200_000
    assert plan.fields["$t"] == b"7200000"
    assert seen == [{"remember": True}]
    spec = engine.load_spec(engine.read_cookie(cookie_header(new_id())), NOW_MS)
    assert spec is not None
    assert spec.idle_ms == 0


def test_callable_idle_timeout_is_written_on_updates_too():
    engine = make_engine(idle_timeout=lambda data: 600)
    session, _ = open_stored(engine, {"a": 1})
    session["a"] = 2
    plan = engine.plan(session, NOW_MS)
    assert isinstance(plan, Write)
    assert dict(plan.fields) == {"a": b"2", "$t": b"600000"}
    assert plan.ttl_ms == 600_000


def test_new_session_over_max_size_is_refused_naming_the_limit(engine):
    session = engine.open_session(Incoming(), None, NOW_MS)
    session["blob"] = "x" * MAX_SIZE
    with pytest.raises(SessionTooLargeError, match="65536") as info:
        engine.plan(session, NOW_MS)
    assert info.value.limit == MAX_SIZE
    assert info.value.size > MAX_SIZE
    assert "max_size" in str(info.value)


def test_update_that_pushes_a_stored_session_over_max_size_is_refused(engine):
    # M3: the unchanged stored fields count too.
    session, _ = open_stored(engine, {"a": "x" * (MAX_SIZE // 2)})
    session["b"] = "y" * (MAX_SIZE // 2)
    with pytest.raises(SessionTooLargeError):
        engine.plan(session, NOW_MS)


def test_session_just_under_max_size_is_written():
    engine = SessionEngine(SessionConfig(secret=SECRET), serializer=JSON, max_size=100)
    session = engine.open_session(Incoming(), None, NOW_MS)
    session["k"] = "x" * 97  # 1 + 99 bytes
    assert isinstance(engine.plan(session, NOW_MS), Write)
    session["k"] = "x" * 98
    with pytest.raises(SessionTooLargeError):
        engine.plan(session, NOW_MS)


def test_lazy_session_never_looked_at_plans_nothing(engine):
    session = engine.new_session(NOW_MS)
    session._loader = lambda s: None
    assert engine.plan(session, NOW_MS) is None


# -- committed ------------------------------------------------------------------------------


def test_committed_write_becomes_the_new_baseline(engine):
    session, _ = open_stored(engine, {"a": 1, "cart": [1], "$x": 1})
    session["a"] = 2
    session["$x"] = 2
    session["cart"].append(2)
    plan = engine.plan(session, NOW_MS)
    engine.committed(session, plan, Committed(True))
    assert session.is_modified is False
    assert engine.plan(session, NOW_MS) is None
    _ = session["cart"]
    assert engine.plan(session, NOW_MS) is None


def test_committed_new_session_is_no_longer_new(engine):
    session = engine.open_session(Incoming(), None, NOW_MS)
    session["a"] = 1
    plan = engine.plan(session, NOW_MS)
    engine.committed(session, plan, Committed(True))
    assert session.is_new is False
    assert engine.plan(session, NOW_MS) is None
    session["a"] = 2
    assert engine.plan(session, NOW_MS) == Write(
        handle=plan.handle, fields={"a": b"2"}, delete=(), ttl_ms=DAY_MS, create=False
    )


def test_committed_deletions_are_not_repeated(engine):
    session, incoming = open_stored(engine, {"a": 1, "b": 2})
    del session["a"]
    engine.committed(session, engine.plan(session, NOW_MS), Committed(True))
    session["b"] = 3
    assert engine.plan(session, NOW_MS) == Write(
        handle=incoming.handle, fields={"b": b"3"}, delete=(), ttl_ms=DAY_MS, create=False
    )


def test_committed_regenerate_is_not_repeated(engine):
    session, _ = open_stored(engine, {"a": 1})
    session.regenerate()
    plan = engine.plan(session, NOW_MS)
    engine.committed(session, plan, Committed(True))
    assert engine.plan(session, NOW_MS) is None
    session["a"] = 2
    assert engine.plan(session, NOW_MS).handle == plan.handle


def test_refused_write_leaves_the_session_destroyed(engine):
    # K3: the session was deleted meanwhile (logout elsewhere): never resurrected.
    session, _ = open_stored(engine, {"a": 1})
    session["a"] = 2
    engine.committed(session, engine.plan(session, NOW_MS), Committed(False))
    assert session.is_destroyed is True
    assert len(session) == 0
    session["b"] = 1
    assert engine.plan(session, NOW_MS) is None


# -- 4. response_headers --------------------------------------------------------------------


def test_stored_new_session_sets_a_cookie_with_cache_headers(engine):
    session = engine.open_session(Incoming(), None, NOW_MS)
    session["a"] = 1
    plan, headers = run(engine, session, Incoming())
    assert ("vary", "Cookie") in headers
    assert ("cache-control", 'private, no-cache="Set-Cookie"') in headers
    cookie = set_cookie(headers)
    assert cookie.startswith(f"session={Signer(SECRET).sign(session.id)};")
    assert f"Max-Age={math.ceil(plan.ttl_ms / 1000)}" in attrs(cookie)
    assert "HttpOnly" in attrs(cookie)
    assert "SameSite=Lax" in attrs(cookie)
    assert "Path=/" in attrs(cookie)


def test_cookie_max_age_rounds_the_ttl_up():
    engine = make_engine(lifetime=10)
    session = engine.open_session(Incoming(), None, NOW_MS)
    session["a"] = 1
    plan, headers = run(engine, session, Incoming())
    assert plan.ttl_ms == 10_000
    assert "Max-Age=10" in attrs(set_cookie(headers))
    session.touch()
    plan, headers = run(engine, session, Incoming(), NOW_MS + 1)
    assert plan.ttl_ms == 9_999
    assert "Max-Age=10" in attrs(set_cookie(headers))


def test_unmodified_existing_session_sends_no_headers(engine):
    session, incoming = open_stored(engine, {"a": 1})
    _ = session["a"]
    assert run(engine, session, incoming) == (None, [])


def test_new_session_that_is_not_stored_sends_no_headers(engine):
    session = engine.open_session(Incoming(), None, NOW_MS)
    assert run(engine, session, Incoming()) == (None, [])


def test_modified_existing_session_refreshes_the_persistent_cookie(engine):
    session, incoming = open_stored(engine, {"a": 1})
    session["a"] = 2
    _, headers = run(engine, session, incoming)
    cookie = set_cookie(headers)
    assert cookie.startswith(f"session={Signer(SECRET).sign(incoming.session_id)};")
    assert "Max-Age=86400" in attrs(cookie)


def test_modified_existing_session_with_browser_session_cookie_sends_no_cookie():
    engine = make_engine(cookie=CookieConfig(persist=False))
    session, incoming = open_stored(engine, {"a": 1})
    session["a"] = 2
    plan, headers = run(engine, session, incoming)
    assert isinstance(plan, Write)
    assert headers == []


def test_persist_false_cookie_has_no_max_age_or_expires():
    engine = make_engine(cookie=CookieConfig(persist=False))
    session = engine.open_session(Incoming(), None, NOW_MS)
    session["a"] = 1
    _, headers = run(engine, session, Incoming())
    cookie = set_cookie(headers)
    assert "Max-Age" not in cookie
    assert "Expires" not in cookie


def test_destroyed_session_with_a_cookie_gets_a_deletion_cookie(engine):
    session, incoming = open_stored(engine, {"a": 1})
    session.destroy()
    plan, headers = run(engine, session, incoming)
    assert plan == Destroy(handle=incoming.handle)
    cookie = set_cookie(headers)
    assert attrs(cookie)[0] == "session="
    assert "Max-Age=0" in attrs(cookie)
    assert "Expires=Thu, 01 Jan 1970 00:00:00 GMT" in attrs(cookie)
    assert ("vary", "Cookie") in headers


def test_destroyed_session_without_a_cookie_sends_no_headers(engine):
    session = engine.open_session(Incoming(), None, NOW_MS)
    session["a"] = 1
    session.destroy()
    assert run(engine, session, Incoming()) == (None, [])


def test_tampered_cookie_is_not_cleared_for_an_untouched_session(engine):
    incoming = Incoming(cookie_present=True)
    session = engine.open_session(incoming, None, NOW_MS)
    assert run(engine, session, incoming) == (None, [])


def test_refused_write_sends_no_cookie_and_ends_destroyed(engine):
    # Gone meanwhile: logged out (that response cleared the cookie) or logged in elsewhere
    # (that response set a new one): clearing here would log the new login out.
    session, incoming = open_stored(engine, {"a": 1})
    session["a"] = 2
    plan, headers = run(engine, session, incoming, applied=False)
    assert isinstance(plan, Write)
    assert session.is_destroyed is True
    assert headers == []


def test_refused_regenerate_sends_no_cookie(engine):
    session, incoming = open_stored(engine, {"a": 1})
    session.regenerate()
    _, headers = run(engine, session, incoming, applied=False)
    assert headers == []
    assert session.is_destroyed is True


def test_regenerate_sets_the_cookie_to_the_new_id(engine):
    session, incoming = open_stored(engine, {"a": 1})
    session.regenerate()
    _, headers = run(engine, session, incoming)
    cookie = set_cookie(headers)
    assert cookie.startswith(f"session={Signer(SECRET).sign(session.id)};")
    assert session.id != incoming.session_id


def test_old_secret_cookie_is_resigned_with_the_first_secret():
    engine = make_engine(secret=[SECRET, OLD_SECRET])
    sid = new_id()
    incoming = engine.read_cookie(cookie_header(sid, OLD_SECRET))
    session = engine.open_session(incoming, loaded({"a": 1}, pttl_ms=DAY_MS - 5000), NOW_MS)
    plan, headers = run(engine, session, incoming)
    assert plan is None
    value = set_cookie(headers).split(";", 1)[0].removeprefix("session=")
    assert Signer(SECRET).unsign(value) == (sid, 0)
    assert Signer(OLD_SECRET).unsign(value) is None
    assert "Max-Age=86395" in set_cookie(headers)


def test_rolling_resends_the_cookie_on_every_response_with_the_refreshed_ttl():
    engine = make_engine(rolling=True)
    session, incoming = open_stored(engine, {"a": 1}, pttl_ms=DAY_MS - 1500)
    plan, headers = run(engine, session, incoming)
    assert plan is None
    assert "Max-Age=86399" in attrs(set_cookie(headers))


def test_touch_resends_the_cookie(engine):
    session, incoming = open_stored(engine, {"a": 1})
    session.touch()
    _, headers = run(engine, session, incoming)
    assert set_cookie(headers).startswith(f"session={Signer(SECRET).sign(incoming.session_id)}")


@pytest.mark.parametrize(("secure", "expected"), [(True, True), (False, False)])
def test_auto_secure_follows_the_request(engine, secure, expected):
    session = engine.open_session(Incoming(), None, NOW_MS)
    session["a"] = 1
    _, headers = run(engine, session, Incoming(), secure=secure)
    assert ("Secure" in attrs(set_cookie(headers))) is expected


@pytest.mark.parametrize("request_secure", [True, False])
def test_explicit_secure_setting_ignores_the_request(request_secure):
    for setting in (True, False):
        engine = make_engine(cookie=CookieConfig(secure=setting))
        session = engine.open_session(Incoming(), None, NOW_MS)
        session["a"] = 1
        _, headers = run(engine, session, Incoming(), secure=request_secure)
        assert ("Secure" in attrs(set_cookie(headers))) is setting


def test_cookie_attributes_follow_the_cookie_config():
    cookie_config = CookieConfig(
        name="sid",
        path="/app",
        domain="example.com",
        same_site="none",
        secure=True,
        partitioned=True,
        priority="high",
        http_only=False,
    )
    engine = make_engine(cookie=cookie_config)
    session = engine.open_session(Incoming(), None, NOW_MS)
    session["a"] = 1
    _, headers = run(engine, session, Incoming())
    parts = attrs(set_cookie(headers))
    assert parts[0].startswith("sid=")
    for expected in (
        "Path=/app",
        "Domain=example.com",
        "SameSite=None",
        "Secure",
        "Partitioned",
        "Priority=High",
    ):
        assert expected in parts
    assert "HttpOnly" not in parts


@pytest.mark.parametrize(
    ("scheme", "forwarded", "trust", "expected"),
    [
        ("https", None, False, True),
        ("wss", None, False, True),
        ("http", None, False, False),
        ("ws", None, False, False),
        ("http", "https", False, False),
        ("http", "https", True, True),
        ("http", "HTTPS", True, True),
        ("http", "https, http", True, True),
        ("http", "http, https", True, False),
        ("https", "http", True, False),
        ("https", "", True, True),
    ],
)
def test_is_secure_request(scheme, forwarded, trust, expected):
    assert is_secure_request(scheme, forwarded, trust_proxy=trust) is expected


def test_second_plan_after_commit_is_none(engine):
    session = engine.open_session(Incoming(), None, NOW_MS)
    session["a"] = {"nested": [1]}
    run(engine, session, Incoming())
    _ = session["a"]
    assert engine.plan(session, NOW_MS) is None


def test_deeply_nested_stored_value_starts_a_new_session_with_stdlib_json(caplog):
    # A corrupt payload is a new session, whatever the serializer path (not a 500).
    engine = SessionEngine(
        SessionConfig(secret=SECRET),
        serializer=JSONSerializer(use_orjson=False),
        max_size=MAX_SIZE,
    )
    sid = new_id()
    incoming = engine.read_cookie(cookie_header(sid))
    fields = stored_fields({})
    fields[b"deep"] = b"[" * 30_000 + b"]" * 30_000
    with caplog.at_level(logging.WARNING, logger="redis_sessions"):
        session = engine.open_session(incoming, Loaded(pttl_ms=DAY_MS, fields=fields), NOW_MS)
    assert session.is_new is True
    assert session.id != sid
