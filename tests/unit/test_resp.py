"""The RESP reader of the local server's readiness probe (`redis_sessions._resp`), on canned
bytes (the probe against real and canned servers is in tests/test_server.py)."""

from __future__ import annotations

import pytest

from redis_sessions._resp import RespReader, command


class _Chunks:
    def __init__(self, *chunks: bytes) -> None:
        self._chunks = list(chunks)

    def recv(self, bufsize: int, /) -> bytes:
        return self._chunks.pop(0) if self._chunks else b""


def test_resp_reader() -> None:
    reader = RespReader(_Chunks(b"+PO", b"NG\r\n$5\r\nhe", b"llo\r\n$-1\r\n-ERR x\r\n"))
    assert reader.reply() == (b"+", b"PONG")
    assert reader.reply() == (b"$", b"hello")
    assert reader.reply() == (b"$", b"")
    assert reader.reply() == (b"-", b"ERR x")
    with pytest.raises(ConnectionResetError):
        reader.reply()


def test_command_is_a_resp_array_of_bulk_strings() -> None:
    assert command("AUTH", "p w") == b"*2\r\n$4\r\nAUTH\r\n$3\r\np w\r\n"
    assert command("PING") == b"*1\r\n$4\r\nPING\r\n"
    assert command("AUTH", "é") == b"*2\r\n$4\r\nAUTH\r\n$2\r\n\xc3\xa9\r\n"  # bytes, not chars
