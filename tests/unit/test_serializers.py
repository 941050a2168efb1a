"""Serializers (JSON with and without orjson, msgpack) and the hash record layout."""

from __future__ import annotations

from typing import Any

import pytest

from redis_sessions import JSONSerializer, MsgpackSerializer, Serializer
from redis_sessions._record import CREATED, IDLE_TTL, decode_record, field_name
from redis_sessions._serializers import default_serializer

VALUE = {"user": "Zoë", "n": 1, "f": 1.5, "ok": True, "none": None, "cart": [1, {"x": "y"}]}

SERIALIZERS = [
    pytest.param(JSONSerializer(), id="orjson"),
    pytest.param(JSONSerializer(use_orjson=False), id="stdlib-json"),
    pytest.param(MsgpackSerializer(), id="msgpack"),
]
JSONS = SERIALIZERS[:2]


@pytest.mark.parametrize("ser", SERIALIZERS)
def test_roundtrip_of_json_like_values(ser):
    value: Any
    for value in (VALUE, [], {}, "", 0, -(2**53), "\u2028", "a\x00b"):
        data = ser.dumps(value)
        assert isinstance(data, bytes)
        assert ser.loads(data) == value


@pytest.mark.parametrize("ser", SERIALIZERS)
def test_serializers_satisfy_the_protocol(ser):
    assert isinstance(ser, Serializer)
    assert ser.name in ("json", "msgpack")


def test_default_serializer_is_json():
    assert isinstance(default_serializer(), JSONSerializer)


def test_orjson_is_used_when_available_and_can_be_disabled():
    assert JSONSerializer()._orjson is not None
    assert JSONSerializer(use_orjson=False)._orjson is None


def test_orjson_and_stdlib_paths_write_identical_compact_bytes():
    fast, slow = JSONSerializer(), JSONSerializer(use_orjson=False)
    assert fast.dumps(VALUE) == slow.dumps(VALUE)
    assert slow.dumps({"a": [1, 2]}) == b'{"a":[1,2]}'
    assert slow.dumps("é") == '"é"'.encode()  # UTF-8, not \\u escapes


@pytest.mark.parametrize("ser", JSONS)
@pytest.mark.parametrize(
    "data", [b"", b"{", b"[1,", b"\xff\xfe", b"nope", b"\x80\x04\x95", b'{"a":1}x']
)
def test_json_invalid_input_is_a_value_error(ser, data):
    with pytest.raises(ValueError):
        ser.loads(data)


@pytest.mark.parametrize("ser", JSONS)
def test_json_deeply_nested_input_is_a_value_error(ser):
    # A hostile or corrupt payload must be a ValueError (a corrupt session), not a crash.
    with pytest.raises(ValueError):
        ser.loads(b"[" * 60_000 + b"]" * 60_000)


@pytest.mark.parametrize("ser", JSONS)
@pytest.mark.parametrize("value", [object(), b"bytes", {1, 2}])
def test_json_unrepresentable_value_is_a_type_error(ser, value):
    with pytest.raises(TypeError):
        ser.dumps(value)


def test_msgpack_keeps_bytes_and_is_smaller_than_json():
    ser = MsgpackSerializer()
    assert ser.loads(ser.dumps(b"\x00\xff")) == b"\x00\xff"
    assert len(ser.dumps(VALUE)) < len(JSONSerializer().dumps(VALUE))


def test_msgpack_truncated_input_is_a_value_error():
    data = MsgpackSerializer().dumps(VALUE)
    for cut in (1, len(data) // 2, len(data) - 1):
        with pytest.raises(ValueError, match="msgpack"):
            MsgpackSerializer().loads(data[:cut])


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x91", b"\x81\xc0"])
def test_msgpack_invalid_input_is_a_value_error(data):
    with pytest.raises(ValueError):
        MsgpackSerializer().loads(data)


def test_msgpack_unrepresentable_value_is_a_type_error():
    with pytest.raises(TypeError):
        MsgpackSerializer().dumps(object())


# -- the hash layout ------------------------------------------------------------------------


def test_user_keys_starting_with_dollar_get_one_more_dollar():
    assert field_name("x") == "x"
    assert field_name("") == ""
    assert field_name("a$") == "a$"
    assert field_name("$x") == "$$x"
    assert field_name("$c") == "$$c"
    assert field_name("$$x") == "$$$x"


def test_decode_record_reads_data_metadata_and_escapes():
    ser = JSONSerializer()
    fields = {
        b"$c": b"1700000000000",
        b"$t": b"600000",
        b"user": b'"alice"',
        b"$$c": b'"user value"',
        b"$$$x": b"1",
    }
    record = decode_record(fields, ser, 65536)
    assert record.created_ms == 1_700_000_000_000
    assert record.data == {"user": "alice", "$c": "user value", "$$x": 1}
    assert record.raw == {"user": b'"alice"', "$c": b'"user value"', "$$x": b"1"}
    assert record.size == sum(len(k) + len(v) for k, v in fields.items())
    assert (CREATED, IDLE_TTL) == ("$c", "$t")


def test_decode_record_ignores_unknown_metadata():
    record = decode_record({b"$c": b"5", b"$future": b"?"}, JSONSerializer(), 100)
    assert record.data == {}
    assert record.created_ms == 5


def test_every_field_name_roundtrips_through_the_layout():
    ser = JSONSerializer()
    data = {"a": 1, "$": 2, "$c": 3, "$$t": 4, "": 5}
    fields = {field_name(k).encode(): ser.dumps(v) for k, v in data.items()}
    fields[b"$c"] = b"1"
    assert decode_record(fields, ser, 65536).data == data


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "creation time"),
        ({b"user": b'"alice"'}, "creation time"),
        ({b"$c": b"not-a-number"}, None),
        ({b"$c": b""}, None),
        ({b"$c": b"1", b"user": b"{broken"}, None),
        ({b"$c": b"1", b"\xff": b"1"}, None),
        ({b"$c": b"1", b"big": b"1" * 100}, "max_size"),
    ],
)
def test_decode_record_rejects_what_this_package_did_not_write(fields, message):
    with pytest.raises(ValueError, match=message):
        decode_record(fields, JSONSerializer(), 64)


def test_decode_record_size_limit_counts_names_and_values():
    fields = {b"$c": b"1", b"ab": b"12"}  # 3 + 4 bytes
    assert decode_record(fields, JSONSerializer(), 7).size == 7
    with pytest.raises(ValueError, match="max_size"):
        decode_record(fields, JSONSerializer(), 6)


def test_decode_record_with_msgpack_values():
    ser = MsgpackSerializer()
    record = decode_record({b"$c": b"1", b"k": ser.dumps(b"raw")}, ser, 100)
    assert record.data == {"k": b"raw"}
