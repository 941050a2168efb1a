"""Session: the mapping apps use, and the change tracking the engine relies on."""

from __future__ import annotations

import pytest

from redis_sessions import Session, SessionStateError
from redis_sessions.engine import should_touch

IDS = iter(f"generated-id-{n:030d}" for n in range(10**6))


def _genid() -> str:
    return next(IDS)


def make(data=None, **kwargs) -> Session:
    return Session(data, genid=_genid, **kwargs)


def stored(data) -> Session:
    """A session as the engine leaves it after loading `data` from the store."""
    s = make()
    s._reset(data, {k: repr(v).encode() for k, v in data.items()})
    s._is_new = False
    s._id = "stored-id-" + "x" * 30
    return s


# -- mapping --------------------------------------------------------------------------------


def test_session_behaves_like_a_dict():
    s = make({"a": 1})
    s["b"] = [1, 2]
    assert s["a"] == 1
    assert s.get("missing") is None
    assert s.get("missing", 5) == 5
    assert "a" in s and "zz" not in s
    assert len(s) == 2
    assert sorted(s) == ["a", "b"]
    assert dict(s.items()) == {"a": 1, "b": [1, 2]}
    assert s == {"a": 1, "b": [1, 2]}
    assert s.pop("a") == 1
    assert s.setdefault("c", 3) == 3
    s.update(d=4)
    assert dict(s) == {"b": [1, 2], "c": 3, "d": 4}
    with pytest.raises(KeyError):
        s["missing"]
    with pytest.raises(KeyError):
        del s["missing"]


@pytest.mark.parametrize("key", [1, b"a", None, ("a",)])
def test_non_str_key_is_a_type_error(key):
    s = make()
    with pytest.raises(TypeError, match="str"):
        s[key] = 1
    assert len(s) == 0


def test_non_str_key_in_initial_data_is_a_type_error():
    with pytest.raises(TypeError):
        make({1: "x"})


def test_new_session_is_new_and_unmodified():
    s = make()
    assert s.is_new is True
    assert s.is_modified is False
    assert s.is_destroyed is False


def test_setting_a_key_marks_the_session_modified():
    s = stored({"a": 1})
    assert s.is_modified is False
    s["b"] = 2
    assert s.is_modified is True


def test_deleting_a_stored_key_is_tracked_as_a_deletion():
    s = stored({"a": 1, "b": 2})
    del s["a"]
    assert s.is_modified is True
    assert s._deleted == {"a"}
    assert "a" not in s


def test_setting_a_deleted_key_again_cancels_the_deletion():
    s = stored({"a": 1})
    del s["a"]
    s["a"] = 5
    assert s._deleted == set()
    assert s._set == {"a"}


def test_deleting_a_key_set_in_this_request_leaves_nothing_to_write():
    s = stored({"a": 1})
    s["new"] = 1
    del s["new"]
    assert s.is_modified is False


def test_clear_deletes_every_stored_key():
    s = stored({"a": 1, "b": 2})
    s.clear()
    assert len(s) == 0
    assert s._deleted == {"a", "b"}
    assert s.is_modified is True


def test_reading_values_does_not_mark_the_session_modified():
    s = stored({"a": 1, "cart": [1]})
    _ = s["a"], s["cart"], s.get("a"), list(s.items())
    assert s.is_modified is False


def test_reading_a_dict_or_list_value_records_it_for_the_nested_change_check():
    s = stored({"n": 1, "cart": [1], "prefs": {"x": 1}, "name": "bob"})
    _ = s["n"], s["cart"], s["prefs"], s["name"]
    assert s._accessed == {"cart", "prefs"}


# -- identity and lifecycle -----------------------------------------------------------------


def test_id_is_assigned_lazily_once():
    calls = []

    def genid():
        calls.append(1)
        return "lazy-id-" + "x" * 30

    s = Session(genid=genid)
    assert calls == []
    assert s.id == s.id == "lazy-id-" + "x" * 30
    assert calls == [1]


def test_created_at_is_in_seconds():
    assert make(created_ms=1_500).created_at == 1.5


def test_regenerate_keeps_the_data_and_clears_the_id():
    s = stored({"user": "alice"})
    old_id = s.id
    s.regenerate()
    assert s._id is None
    assert s.is_modified is True
    assert dict(s) == {"user": "alice"}
    assert s.id != old_id


def test_destroy_clears_data_and_marks_destroyed():
    s = stored({"a": 1})
    s["b"] = 2
    s.destroy()
    assert s.is_destroyed is True
    assert len(s) == 0
    assert s.is_modified is False


def test_regenerate_after_destroy_revives_the_session():
    s = stored({"a": 1})
    s.destroy()
    s.regenerate()
    assert s.is_destroyed is False


def test_touch_asks_for_an_expiry_refresh():
    s = stored({"a": 1})
    assert should_touch(s) is False
    s.touch()
    assert should_touch(s) is True
    assert s.is_modified is False


def test_mark_modified_with_a_key_forces_that_key():
    s = stored({"a": 1})
    s.mark_modified("a")
    assert s.is_modified is True
    assert s._set == {"a"}


def test_mark_modified_with_an_unknown_key_does_nothing():
    s = stored({"a": 1})
    s.mark_modified("missing")
    assert s.is_modified is False


def test_mark_modified_without_a_key_forces_the_whole_session():
    s = stored({"a": 1})
    s.mark_modified()
    assert s.is_modified is True


# -- lazy loading ---------------------------------------------------------------------------


def test_lazy_loader_runs_exactly_once_on_first_access():
    calls = []

    def loader(session):
        calls.append(session)
        session._reset({"a": 1}, {})

    s = make()
    s._loader = loader
    assert calls == []
    assert s["a"] == 1
    assert s.get("a") == 1
    assert len(s) == 1
    assert calls == [s]


@pytest.mark.parametrize(
    "access",
    [
        lambda s: s["a"],
        lambda s: s.__setitem__("b", 1),
        lambda s: s.__delitem__("a"),
        lambda s: "a" in s,
        lambda s: len(s),
        lambda s: list(s),
        lambda s: s.id,
        lambda s: s.is_new,
        lambda s: s.created_at,
        lambda s: s.regenerate(),
    ],
)
def test_any_access_triggers_the_lazy_load(access):
    calls = []

    def loader(session):
        calls.append(1)
        session._reset({"a": 1}, {})

    s = make()
    s._loader = loader
    access(s)
    assert calls == [1]


def test_lazy_loader_that_raised_is_retried_on_next_access():
    attempts = []

    def loader(session):
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("store down")
        session._reset({"a": 1}, {})

    s = make()
    s._loader = loader
    with pytest.raises(ConnectionError):
        s["a"]
    assert s["a"] == 1
    assert s["a"] == 1
    assert len(attempts) == 2


def test_destroy_loads_a_pending_lazy_session_first():
    # Only a session that exists can be deleted: the lazy load runs before the destroy.
    calls = []

    def loader(session):
        calls.append(1)
        session._reset({"a": 1}, {})

    s = make()
    s._loader = loader
    s.destroy()
    assert calls == [1]
    assert s.is_destroyed is True
    assert len(s) == 0
    assert calls == [1]


def test_is_destroyed_does_not_trigger_the_lazy_load():
    calls: list[Session] = []
    s = make()
    s._loader = calls.append
    assert s.is_destroyed is False
    assert calls == []


@pytest.mark.parametrize("call", ["touch", "mark_modified"])
def test_touch_and_mark_modified_load_a_lazy_session_first(call):
    # Otherwise the request would end "never loaded" and the touch would be lost.
    calls: list[Session] = []
    s = make()
    s._loader = calls.append
    getattr(s, call)()
    assert calls == [s]


# -- explicit I/O ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["save", "reload"])
def test_save_or_reload_without_binding_is_a_state_error(method):
    with pytest.raises(SessionStateError, match="not attached"):
        getattr(make(), method)()


@pytest.mark.parametrize("method", ["asave", "areload"])
def test_async_save_or_reload_without_binding_is_a_state_error(method):
    coro = getattr(make(), method)()
    with pytest.raises(SessionStateError):
        coro.send(None)  # runs the coroutine without an event loop


def test_session_state_error_is_a_runtime_error():
    assert issubclass(SessionStateError, RuntimeError)


def test_save_and_reload_are_delegated_to_the_binding():
    calls = []

    class Binding:
        def save(self, session):
            calls.append(("save", session))

        def reload(self, session):
            calls.append(("reload", session))

    s = make()
    s._binding = Binding()  # type: ignore[assignment]  # sync only: asave/areload unused
    s.save()
    s.reload()
    assert calls == [("save", s), ("reload", s)]


# -- repr -----------------------------------------------------------------------------------


def test_repr_shows_state_without_values():
    s = make({"password": "hunter2"})
    assert repr(s) == "<Session new, 1 keys>"
    assert "hunter2" not in repr(s)
    assert repr(stored({})) == "<Session stored, 0 keys>"


def test_repr_of_an_unloaded_session_does_not_load_it():
    calls: list[Session] = []
    s = make()
    s._loader = calls.append
    assert repr(s) == "<Session new, unloaded>"
    assert calls == []


# -- a real dict ----------------------------------------------------------------------------


def test_session_is_a_dict_and_its_copies_are_plain_dicts_without_the_binding():
    import copy

    s = stored({"a": 1, "cart": [1]})
    s._binding = object()  # type: ignore[assignment]  # any binding: never copied nor pickled
    assert isinstance(s, dict)
    for duplicate in (s.copy(), copy.copy(s), copy.deepcopy(s), s | {}, {} | s, dict(s)):
        assert type(duplicate) is dict
        assert duplicate == {"a": 1, "cart": [1]}
    assert copy.deepcopy(s)["cart"] is not s["cart"]
    # What pickle would store: the data as a plain dict, no store, lock or loader.
    assert s.__reduce_ex__(5) == (dict, ({"a": 1, "cart": [1]},))
    assert type(s.fromkeys(["k"])) is dict
    assert s.is_modified is False


def test_dict_errors_are_the_dicts():
    s = stored({})
    with pytest.raises(KeyError):
        s.popitem()
    with pytest.raises(KeyError):
        s.pop("missing")
    with pytest.raises(TypeError):
        s | [("a", 1)]
    with pytest.raises(TypeError, match="str"):
        s.update({1: "x"})
    assert s.pop("missing", 7) == 7
    assert s.is_modified is False


def test_json_and_orjson_serialize_the_session_as_a_dict():
    import json

    import orjson

    s = stored({"a": 1, "cart": [1]})
    assert json.loads(json.dumps(s)) == {"a": 1, "cart": [1]}
    assert orjson.loads(orjson.dumps(s)) == {"a": 1, "cart": [1]}
    assert s.is_modified is False


def test_dict_of_a_lazy_session_loads_it_but_the_c_readers_see_empty_storage():
    import json

    import orjson

    def loader(session):
        session._reset({"a": 1}, {})

    s = make()
    s._loader = loader
    # json's C encoder (empty storage: "{}" without calling items()) and orjson read the
    # dict's storage, which only the load fills: the documented trap.
    assert json.dumps(s) == "{}" and orjson.dumps(s) == b"{}"
    assert s._loader is loader
    assert dict(s) == {"a": 1}  # keys() and __getitem__: loads
    assert json.dumps(s) == '{"a": 1}'
