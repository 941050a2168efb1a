"""The commands a flow yields, as plain data, and `Flow`, the type of a flow.

A flow is a generator that yields commands and receives their replies: `Script`, `Call`,
`Batch`, `Sleep`, `Durable`. The runners (`_sync.py`, `_async.py`) perform them; nothing here
knows a client library.
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["Batch", "Call", "Command", "Durable", "Flow", "Script", "Sleep"]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Script:
    """Run a Lua script: EVALSHA, falling back to EVAL when the server does not have it."""

    source: str
    sha: str
    keys: tuple[str, ...]
    args: tuple[Any, ...]

    @classmethod
    def define(cls, source: str) -> Script:
        """A script template with no keys or arguments yet."""
        return cls(source, hashlib.sha1(source.encode()).hexdigest(), (), ())

    def __call__(self, keys: tuple[str, ...], args: tuple[Any, ...]) -> Script:
        return Script(self.source, self.sha, keys, args)

    @property
    def writes(self) -> bool:
        """Whether the script may write (not declared ``no-writes``)."""
        return not self.source.startswith("#!lua flags=no-writes")


@dataclass(frozen=True, slots=True)
class Call:
    """One plain Redis command; on a Cluster, `node` names the node it goes to (SCAN)."""

    args: tuple[Any, ...]
    node: Any = None

    @property
    def writes(self) -> bool:
        """Whether the command writes."""
        return str(self.args[0]).upper() in _WRITING


_WRITING = frozenset({"PEXPIRE", "DEL", "UNLINK", "SET", "HSET"})


@dataclass(frozen=True, slots=True)
class Batch:
    """Several plain commands in one round trip (a non-transactional pipeline). Error replies
    come back as values, unless `strict` (the first one is raised)."""

    calls: tuple[Call, ...]
    strict: bool = False

    @property
    def writes(self) -> bool:
        """Whether any command of the batch writes."""
        return any(call.writes for call in self.calls)


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait (the runner sleeps its own way: ``time.sleep`` or ``asyncio.sleep``)."""

    seconds: float
    writes = False


@dataclass(frozen=True, slots=True)
class Durable:
    """A write followed, on the same connection and in the same round trip, by ``WAIT
    replicas timeout`` (or ``WAITAOF 1 replicas timeout`` with `aof`): the write counts only
    when that many replicas (and the local AOF) have it. Fewer acknowledgements fail it
    with NOREPLICAS (the write itself stays applied: it is idempotent, a retry is safe)."""

    inner: Script | Call
    replicas: int
    timeout_ms: int
    aof: bool = False
    writes = True

    @property
    def wait_args(self) -> tuple[Any, ...]:
        """The WAIT or WAITAOF command."""
        if self.aof:
            return ("WAITAOF", 1, self.replicas, self.timeout_ms)
        return ("WAIT", self.replicas, self.timeout_ms)

    def shortfall(self, acks: Any) -> str | None:
        """The NOREPLICAS error message when `acks` (WAIT's or WAITAOF's reply) is short, else
        None. The runner raises it as the error reply Redis would have sent, so it is told
        apart from other failures in one place (`_health.classify`)."""
        local, replicas = (acks[0], acks[1]) if isinstance(acks, list) else (1, acks)
        if local >= 1 and replicas >= self.replicas:
            return None
        what = f"{replicas} of {self.replicas} replicas" + ("" if local else ", no local AOF")
        return f"NOREPLICAS {what} acknowledged the write within {self.timeout_ms} ms"


Command = Script | Call | Batch | Sleep | Durable

# A flow that returns a T: it yields commands, is sent each reply, and returns its result.
Flow = Generator[Command, Any, _T]
