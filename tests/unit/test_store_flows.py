"""The store's pure pieces: the flows and their commands import no client library, and the
listing, the scripts' arguments and `Durable` decode and encode without a server."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest

import redis_sessions
from redis_sessions import ConfigError, JSONSerializer
from redis_sessions.store._commands import Batch, Call, Durable, Flow
from redis_sessions.store._layouts import HashLayout
from redis_sessions.store._listing import (
    Dedup,
    SessionInfo,
    cluster_rows,
    describe_calls,
    session_infos,
)
from redis_sessions.store._scripts import WRITE, counter_codec, write_args

from .test_sans_io import BLOCKED

STORE_FLOW_MODULES = [
    "store._commands",
    "store._scripts",
    "store._listing",
    "store._waiters",
    "store._layouts",
]


# Runs in a fresh interpreter, with imports of the I/O libraries refused, on this very package
# (its path given: -I ignores PYTHONPATH), stood in for by an empty module as in test_sans_io.
IMPORT_CHECK = textwrap.dedent(
    """
    import importlib, sys, types

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {blocked!r}:
                raise ImportError("blocked: " + name)
            return None

    sys.meta_path.insert(0, Block())
    package = types.ModuleType("redis_sessions")
    package.__path__ = {path!r}
    sys.modules["redis_sessions"] = package
    for module in {modules!r}:
        importlib.import_module("redis_sessions." + module)
    print(sorted(importlib.import_module("redis_sessions." + m).__file__ for m in {modules!r}))
    """
)


def test_the_flows_import_no_io_library() -> None:
    code = IMPORT_CHECK.format(
        blocked=BLOCKED, path=list(redis_sessions.__path__), modules=STORE_FLOW_MODULES
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert redis_sessions.__path__[0] in done.stdout  # this checkout's modules were checked


def drive(flow: Flow[Any], replies: list[Any]) -> tuple[list[Any], Any]:
    """Run `flow` by hand: each command it yields gets the next reply -> (commands, result)."""
    commands: list[Any] = []
    try:
        commands.append(next(flow))
        for reply in replies:
            commands.append(flow.send(reply))
    except StopIteration as done:
        return commands, done.value
    raise AssertionError(f"the flow wants more replies after {commands}")


def layout(**options: Any) -> HashLayout:
    config: dict[str, Any] = {
        "prefix": "sess:",
        "serializer": JSONSerializer(),
        "max_size": 65536,
        "scan_count": 100,
        "disable_ttl": False,
    }
    return HashLayout(**{**config, **options})


def test_a_flow_is_driven_without_a_server() -> None:
    commands, result = drive(layout().get("h"), [[[b"a", b"1", b"$c", b"5"]]])
    assert commands == [Batch((Call(("HGETALL", "sess:{h}")),))]
    assert result == {"a": 1}
    assert drive(layout().destroy(), []) == ([], 0)  # no handles: no command at all


def test_durable_shortfall_is_the_noreplicas_message() -> None:
    wait = Durable(Call(("DEL", "k")), replicas=2, timeout_ms=100)
    assert wait.wait_args == ("WAIT", 2, 100)
    assert wait.shortfall(2) is None
    assert wait.shortfall(1) == "NOREPLICAS 1 of 2 replicas acknowledged the write within 100 ms"
    aof = Durable(Call(("DEL", "k")), replicas=0, timeout_ms=50, aof=True)
    assert aof.wait_args == ("WAITAOF", 1, 0, 50)
    assert aof.shortfall([1, 0]) is None
    assert aof.shortfall([0, 0]) == (
        "NOREPLICAS 0 of 0 replicas, no local AOF acknowledged the write within 50 ms"
    )


def test_cluster_rows_are_the_describe_script_rows() -> None:
    calls = describe_calls("sess:{h}", "user")
    assert [call.args[0] for call in calls] == ["OBJECT", "PTTL", "MEMORY", "HLEN", "HMGET"]
    replies: list[Any] = [
        *(7, 1000, 120, 3, [b"5", b'"ann"']),  # a session
        *(None, -2, None, 0, [None, None]),  # gone
        *(ValueError("refused"), 500, ValueError("refused"), 2, [b"6", None]),  # LFU policy
        *(1, -1, 64, ValueError("WRONGTYPE"), ValueError("WRONGTYPE")),  # not a hash
    ]
    assert cluster_rows(replies) == [
        [7, 1000, 120, 3, [b"5", b'"ann"']],
        0,
        [-1, 500, -1, 2, [b"6", None]],
        0,
    ]


def test_session_infos_keep_the_sessions_and_decode_their_fields() -> None:
    rows: list[Any] = [
        [7, 1000, 120, 3, [b"5", b'{"name": "ann", "id": 1}']],
        0,
        [-1, -2, -1, 0, [None, None]],  # expired between SCAN and the script
        [-1, -1, -1, 2, [b"not a number", b"{broken"]],
    ]
    infos = session_infos(["a", "b", "c", "d"], ["ka", "kb", "kc", "kd"], rows, JSONSerializer())
    assert infos == [
        SessionInfo(
            handle="a",
            key="ka",
            ttl_ms=1000,
            created_ms=5,
            user="ann",
            size=120,
            idle_s=7,
            fields=3,
        ),
        SessionInfo(
            handle="d",
            key="kd",
            ttl_ms=-1,
            created_ms=None,
            user=None,
            size=None,
            idle_s=None,
            fields=2,
        ),
    ]


def test_dedup_returns_each_handle_once() -> None:
    dedup = Dedup()
    assert dedup.fresh(["a", "b", "a"]) == ["a", "b"]
    assert dedup.fresh(["b", "c"]) == ["c"]


def test_write_arguments_and_counter_codec() -> None:
    assert write_args("hdr", [b"s", b"1"], {"f": b"v"}, [("n", 2)], ["gone"]) == (
        "hdr",
        b"s",
        b"1",
        "f",
        b"v",
        "n",
        2,
        "gone",
    )
    assert counter_codec(JSONSerializer(), ()) == "-"
    assert counter_codec(JSONSerializer(), (("n", 1),)) == "j"

    class Other(JSONSerializer):
        name = "yaml"

    with pytest.raises(ConfigError, match="json or msgpack"):
        counter_codec(Other(), (("n", 1),))
    assert WRITE.writes and WRITE.keys == ()
