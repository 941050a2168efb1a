"""The hash layout: how store operations become Redis commands, written once as generator flows.

A flow (`_commands.Flow`) is a generator that yields commands (plain data) and receives their
replies; the sync and asyncio runners (`_sync.py`, `_async.py`) perform the I/O. Every
multi-step operation (load with TTL refresh, conditional save, regenerate, SCAN paging) is
therefore written exactly once. The Lua scripts the flows run are in `_scripts.py`.

Data model (one Redis hash per session, key ``{prefix}{<handle>}``; the braces are a Cluster
hash tag so companion keys of a session share its slot):

- each top-level session key is one field, its value serialized (JSON by default);
- ``$c`` holds the creation time (ms), ``$t`` a per-session idle timeout (ms) when the idle
  timeout is a callable, ``$a`` the last access (ms) with `disable_ttl` (the reads enforce the
  idle timeout from it); user keys starting with ``$`` are stored with one more ``$``.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .._config import MAX_SECONDS
from .._errors import SessionLockError, SessionStateError
from .._plans import DONE, Committed, Destroy, Load, Loaded, Plan, Release, Touch, Write
from .._record import (
    ACCESSED,
    CREATED,
    check_size,
    decode_record,
    encode_fields,
    field_name,
    size_of,
)
from .._serializers import Serializer
from ._commands import Batch, Call, Durable, Flow, Script, Sleep
from ._listing import SessionInfo, cluster_rows, describe_calls, session_infos
from ._scripts import (
    ALL_TAKEN,
    DESCRIBE,
    EXPIRED,
    FOREIGN,
    LOCK_AND_READ,
    LOCK_HELD,
    NOT_AN_INTEGER,
    READ,
    READ_ROLLING,
    REGENERATE_DROP,
    REGENERATE_TAKE,
    WRITE,
    counter_codec,
    write_args,
)
from ._waiters import Waiters

__all__ = ["HashLayout"]

MAX_TTL_MS = int(MAX_SECONDS * 1000)


class HashLayout:
    """Flows for the default layout: one hash per session, delta saves.

    Args:
        prefix: key prefix (default ``"sess:"``).
        serializer: value serializer (for `get` / `set` / `all`).
        max_size: limit of a serialized session in bytes.
        scan_count: COUNT hint for SCAN.
        disable_ttl: never set a TTL. The idle and absolute timeouts are then enforced when a
            session is read (from its last access ``$a`` and creation time ``$c``): an expired
            one reads as missing and is deleted. One that nothing reads stays in Redis.

    Attributes:
        cluster: the client is a Cluster client: a command never spans two slots (regenerate
            is split in three, listing goes node by node, multi-key deletes are batched).
        wait: (replicas, timeout ms, aof) when every save is followed by WAIT / WAITAOF.
        clock: the time a save records as the last access with `disable_ttl` (ms since the
            epoch; wall-clock, the time the adapters pass to the engine).
    """

    __slots__ = (
        "_match",
        "_waiters",
        "clock",
        "cluster",
        "disable_ttl",
        "max_size",
        "prefix",
        "scan_count",
        "serializer",
        "wait",
    )

    def __init__(
        self,
        *,
        prefix: str,
        serializer: Serializer,
        max_size: int,
        scan_count: int,
        disable_ttl: bool,
    ) -> None:
        self.prefix = prefix
        self.serializer = serializer
        self.max_size = max_size
        self.scan_count = scan_count
        self.disable_ttl = disable_ttl
        self._match = _glob_escape(prefix) + "{*}"
        self._waiters = Waiters()
        self.cluster = False
        self.wait: tuple[int, int, bool] | None = None
        self.clock: Callable[[], int] = _wall_ms

    def durable(self, command: Script | Call) -> Script | Call | Durable:
        """`command`, followed by WAIT / WAITAOF when the store asks for replicated saves."""
        if self.wait is None:
            return command
        replicas, timeout_ms, aof = self.wait
        return Durable(command, replicas, timeout_ms, aof)

    def key(self, handle: str) -> str:
        """The Redis key of a session handle."""
        return f"{self.prefix}{{{handle}}}"

    def handle_of(self, key: bytes | str) -> str | None:
        """The handle in a Redis key, or None if the key is not one of ours."""
        text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
        inner = text[len(self.prefix) :]
        if text.startswith(self.prefix) and inner[:1] == "{" and inner[-1:] == "}":
            return inner[1:-1]
        return None

    def _ttl(self, ttl_ms: int) -> int:
        # Capped at 10 years: Lua writes 1e14 and more as '1e+14', which PEXPIRE refuses.
        return 0 if self.disable_ttl else min(ttl_ms, MAX_TTL_MS)

    # -- what the adapters use --------------------------------------------------------------

    def lock_key(self, handle: str) -> str:
        """The key of a session's lock (same Cluster slot as the session)."""
        return f"{self.prefix}{{{handle}}}:lock"

    def log_key(self, handle: str) -> str:
        """The key of a session's recent write nonces (same Cluster slot as the session)."""
        return f"{self.prefix}{{{handle}}}:w"

    def load(self, spec: Load) -> Flow[Loaded | None]:
        """Flow: read a session -> `Loaded` or None. With `rolling` (touch_after 0) the TTL is
        refreshed in the same command; otherwise `Loaded.refresh_ms` says a refresh is due.
        With `spec.lock`, the session's lock is taken first (see `Load`)."""
        key = self.key(spec.handle)
        args = (
            f"{spec.now_ms} {spec.idle_ms} {spec.lifetime_ms} {spec.touch_after_ms} "
            f"{int(self.disable_ttl)}",
        )
        if spec.lock is not None:
            return (yield from self._load_locked(spec, key, args))
        script = READ_ROLLING if spec.touch_after_ms == 0 else READ
        reply = yield script((key,), args)
        if reply == EXPIRED:  # past its absolute lifetime: gone for good (rare: an extra command)
            yield Call(("DEL", key))
            return None
        return self._loaded(reply)

    def _load_locked(self, spec: Load, key: str, args: tuple[Any, ...]) -> Flow[Loaded | None]:
        # Wait for the holder with a growing, jittered delay, never past the wait bound.
        deadline = time.monotonic() + spec.lock_wait_ms / 1000
        delay = 0.002
        keys = (key, self.lock_key(spec.handle))
        waiters = self._waiters
        if spec.lock_waiters and waiters.full(spec.handle, spec.lock_waiters):
            raise SessionLockError("lock waiters")  # at once, no Redis call
        waiting = False
        try:
            while True:
                reply = yield LOCK_AND_READ(keys, (*args, spec.lock, spec.lock_ttl_ms))
                if reply != LOCK_HELD:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SessionLockError("lock timeout")
                if spec.lock_waiters and not waiting:
                    if not waiters.join(spec.handle, spec.lock_waiters, deadline):
                        raise SessionLockError("lock waiters")
                    waiting = True
                yield Sleep(min(delay * (0.5 + random.random()), left))
                delay = min(delay * 2, 0.05)
        finally:
            if waiting:
                waiters.leave(spec.handle, deadline)
        loaded = self._loaded(reply)
        if loaded is None or loaded.foreign:
            return loaded  # the script released the lock: nothing to protect
        return Loaded(pttl_ms=loaded.pttl_ms, fields=loaded.fields, lock=spec.lock)

    @staticmethod
    def _loaded(reply: Any) -> Loaded | None:
        if reply is None:
            return None
        if reply == FOREIGN:
            return Loaded(pttl_ms=-1, fields={}, foreign=True)
        pttl, flat, due = reply
        return Loaded(pttl_ms=pttl, fields=dict(zip(flat[::2], flat[1::2])), refresh_ms=due)

    def commit(self, plan: Plan) -> Flow[Committed]:
        """Flow: run a plan -> `Committed` (not applied: the session was gone meanwhile).

        Raises `SessionLockError` when the plan holds a lock that is no longer this request's
        (it expired): nothing was written."""
        match plan:
            case None:
                return DONE
            case Write(regenerated_from=str(old)) if self.cluster:
                return (yield from self._regenerate_across_slots(plan, old))
            case Write(create=True):
                return (yield from self._create(plan))
            case Write():
                write = self._write(
                    plan.handle, plan.fields, plan.delete, plan.ttl_ms, "u", plan, old=None
                )
                return self._applied(plan, (yield self.durable(write)))
            case Touch(hold=None) if self.disable_ttl:
                # The refresh is the last access, written if the session exists.
                return self._applied(plan, (yield self._write(plan.handle, {}, (), 0, "u")))
            case Touch(hold=None):
                ttl = min(plan.ttl_ms, MAX_TTL_MS)
                return Committed((yield Call(("PEXPIRE", self.key(plan.handle), ttl))) == 1)
            case Destroy(hold=None):
                yield self.durable(Call(("DEL", self.key(plan.handle))))
                return DONE
            case Touch():
                # No TTL to refresh with disable_ttl: the write of the last access is the refresh.
                mode = "u" if self.disable_ttl else "t"
                write = self._write(plan.handle, {}, (), plan.ttl_ms, mode, plan)
                return self._applied(plan, (yield write))
            case Destroy():
                write = self._write(plan.handle, {}, (), 0, "d", plan)
                return self._applied(plan, (yield self.durable(write)))
            case Release():
                return self._applied(plan, (yield self._write(plan.handle, {}, (), 0, "n", plan)))

    def _regenerate_across_slots(self, plan: Write, old: str) -> Flow[Committed]:
        # The old and the new key live in different slots (in general), and no script may
        # touch two: read the old session (checking the lock), create the new one from it
        # with this request's changes, delete the old one. Between the last two commands both
        # exist, for one round trip; never neither. A write to the old session landing in
        # that window is lost with it, as a write after a local regenerate is refused.
        hold = plan.hold
        lock_key = self.lock_key(old) if hold is not None else None
        keys = (self.key(old),) + ((lock_key,) if lock_key else ())
        taken = yield REGENERATE_TAKE(keys, (hold.token if hold else "-",))
        if taken == LOCK_HELD:
            raise SessionLockError("lock lost")
        if taken == 0:
            # Logged out meanwhile (not resurrected under a new id), or this regenerate was
            # sent before and applied: the new session then exists (a rare extra command).
            return Committed((yield Call(("EXISTS", self.key(plan.handle)))) == 1)
        result = yield from self._create(plan, taken[0])
        yield REGENERATE_DROP(keys, (hold.token if hold and hold.release else "-",))
        return result

    def _create(self, plan: Write, seed: list[bytes] | None = None) -> Flow[Committed]:
        # The write takes the first free of the plan's handle and its spares, in one command;
        # on a Cluster (the spares lie in other slots) one command per candidate, the next one
        # only after a collision. The spare taken goes to `Committed.taken`.
        # With `seed` (regenerate across slots, second step): no old key, no lock, and no
        # `durable()` (the durability options are refused with a Cluster client).
        source = plan if seed is None else dataclasses.replace(plan, hold=None)
        old = plan.regenerated_from if seed is None else None
        candidates: list[tuple[str | None, str]] = [(None, plan.handle), *plan.spare]
        groups = [[c] for c in candidates] if self.cluster else [candidates]
        for group in groups:
            write = self._write(
                group[0][1],
                plan.fields,
                plan.delete,
                plan.ttl_ms,
                "c",
                source,
                old=old,
                seed=seed,
                spare=[h for _, h in group[1:]],
            )
            reply = yield (write if seed is not None else self.durable(write))
            pick = reply[0] if isinstance(reply, list) else reply
            if pick == ALL_TAKEN:
                continue
            taken = None
            if isinstance(pick, int) and pick >= 1:
                sid, handle = group[pick - 1]
                if sid is not None:
                    taken = (sid, handle)
                if not isinstance(reply, list):
                    reply = 1
            return self._applied(plan, reply, taken)
        if not plan.spare:
            return Committed(False)  # e.g. Django's save(must_create=True) of a key that exists
        raise SessionStateError(
            f"genid: the new session id and its {len(plan.spare)} spares "
            "are all in use already; genid must return unique ids"
        )

    def _applied(
        self,
        plan: Write | Touch | Destroy | Release,
        reply: Any,
        taken: tuple[str, str] | None = None,
    ) -> Committed:
        if reply == LOCK_HELD:
            if isinstance(plan, Release):
                return DONE  # expired already: nothing was written, nothing to free
            raise SessionLockError("lock lost")
        if isinstance(reply, list):
            if reply[0] == NOT_AN_INTEGER:
                name = reply[1].decode("utf-8", "replace")
                raise SessionStateError(f"incr: the stored value of {name!r} is not an integer")
            values: dict[str, bytes] = {}
            if isinstance(plan, Write):
                names = [name for name, _ in plan.incr] + [name for name, _ in plan.setnx]
                values = {name: value for name, value in zip(names, reply[1:]) if value is not None}
            return Committed(True, values, taken)
        return Committed(reply == 1, taken=taken)

    def _write(
        self,
        handle: str,
        fields: Mapping[str, bytes],
        delete: Iterable[str],
        ttl_ms: int,
        mode: str,
        plan: Write | Touch | Destroy | Release | None = None,
        *,
        old: str | None = None,
        seed: list[bytes] | None = None,
        spare: Iterable[str] = (),
    ) -> Script:
        if self.disable_ttl and mode in ("c", "u", "r"):
            # No TTL: the reads enforce the idle timeout from the last access.
            fields = {**fields, ACCESSED: str(self.clock()).encode()}
        keys = [self.key(handle)]
        old_index = log = lock = 0
        if old is not None:
            keys.append(self.key(old))
            old_index = len(keys)
        nonce = plan.nonce if plan is not None else None
        if nonce is not None:
            keys.append(self.log_key(handle))
            log = len(keys)
        token: str | None
        match plan:
            case Release():
                token, release = plan.token, True
            case Write() | Touch() | Destroy() if plan.hold is not None:
                token, release = plan.hold.token, plan.hold.release
            case _:
                token, release = None, False
        if token is not None:
            keys.append(self.lock_key(old or handle))
            lock = len(keys)
        incr = plan.incr if isinstance(plan, Write) else ()
        setnx = plan.setnx if isinstance(plan, Write) else ()
        spares = 0
        for other in spare:
            keys += (self.key(other), self.log_key(other))
            spares += 1
        header = (
            f"{self._ttl(ttl_ms)} {mode} {len(fields)} {len(incr)} {len(setnx)} "
            f"{old_index} {log} {lock} {int(release)} {counter_codec(self.serializer, incr)} "
            f"{nonce or '-'} {token or '-'} {len(seed or ()) // 2} {spares}"
        )
        return WRITE(tuple(keys), write_args(header, seed or (), fields, (*incr, *setnx), delete))

    # -- the connect-redis store API --------------------------------------------------------

    def get(self, handle: str) -> Flow[dict[str, Any] | None]:
        """Flow: the data of a session, or None when missing or unreadable. No TTL refresh."""
        (reply,) = yield Batch((Call(("HGETALL", self.key(handle))),))
        return self._decode(reply)

    def _decode(self, fields: Any) -> dict[str, Any] | None:
        # In a batch, a key of another type answers with an error object: not a session.
        if not fields or not isinstance(fields, (dict, list)):
            return None
        if isinstance(fields, list):
            fields = dict(zip(fields[::2], fields[1::2]))
        try:
            return decode_record(fields, self.serializer, self.max_size).data
        except ValueError:
            return None

    def set(self, handle: str, data: Mapping[str, Any], ttl_ms: int, now_ms: int) -> Flow[bool]:
        """Flow: replace a session's data (creating it), with a TTL; a TTL <= 0 deletes it."""
        if ttl_ms <= 0 and not self.disable_ttl:
            yield Call(("DEL", self.key(handle)))
            return False
        fields = encode_fields(data, self.serializer)
        check_size(size_of(fields), self.max_size)
        fields[CREATED] = str(now_ms).encode()
        yield self.durable(self._write(handle, fields, (), ttl_ms, "r"))
        return True

    def destroy(self, *handles: str) -> Flow[int]:
        """Flow: delete sessions -> how many existed."""
        if not handles:
            return 0
        if self.cluster:  # one key per command: the keys are spread over the slots
            replies = yield Batch(
                tuple(Call(("UNLINK", self.key(h))) for h in handles), strict=True
            )
            return sum(replies)
        deleted: int = yield self.durable(Call(("UNLINK", *(self.key(h) for h in handles))))
        return deleted

    def touch(self, handle: str, ttl_ms: int) -> Flow[bool]:
        """Flow: refresh a session's TTL -> False if it does not exist. A TTL under 1 ms
        raises `ValueError` (``PEXPIRE`` would delete the session)."""
        if ttl_ms <= 0:
            raise ValueError(f"touch: the TTL must be at least 1 ms, got {ttl_ms} ms")
        result = yield from self.commit(Touch(handle=handle, ttl_ms=ttl_ms))
        return result.applied

    def scan_page(
        self, cursor: int, handle_prefix: str = "", node: Any = None
    ) -> Flow[tuple[int, list[str]]]:
        """Flow: one SCAN page -> (next cursor, handles). SCAN, never KEYS: it never blocks.

        `handle_prefix` keeps only handles starting with it (matched by Redis, not here).
        On a Cluster, `node` is the primary scanned (each has its own keys and cursor).
        """
        match = self._match
        if handle_prefix:
            match = f"{_glob_escape(self.prefix)}{{{_glob_escape(handle_prefix)}*}}"
        reply = yield Call(("SCAN", cursor, "MATCH", match, "COUNT", self.scan_count), node)
        cursor, keys = reply
        if isinstance(cursor, dict):  # a Cluster client's cursor is {node: cursor}
            (cursor,) = cursor.values()
        handles = [h for h in map(self.handle_of, keys) if h is not None]
        return int(cursor), handles

    def describe(self, handles: list[str], user_field: str) -> Flow[list[SessionInfo]]:
        """Flow: metadata of sessions in one round trip -> [SessionInfo] (gone ones left out).

        Per session: PTTL, creation time, the `user_field` value, MEMORY USAGE and OBJECT
        IDLETIME (None where the server refuses it, e.g. under an LFU eviction policy).
        """
        if not handles:
            return []
        # One script for the whole page (instead of five commands per key), sent between
        # CLIENT NO-TOUCH ON/OFF (Redis 7.2+, Valkey) so looking does not reset the idle clocks
        # it reports; older servers answer NO-TOUCH with an error, which is ignored.
        keys = [self.key(handle) for handle in handles]
        user = field_name(user_field)
        if self.cluster:
            # Plain commands, five per key, in one pipeline: a script per key would cost the
            # Cluster client a COMMAND GETKEYS round trip each to find its slot. No NO-TOUCH
            # (the pipeline spreads over several connections).
            replies = yield Batch(tuple(call for key in keys for call in describe_calls(key, user)))
            rows = cluster_rows(replies)
        else:
            replies = yield Batch(
                (
                    Call(("CLIENT", "NO-TOUCH", "ON")),
                    Call(("EVAL", DESCRIBE.source, len(keys), *keys, user)),
                    Call(("CLIENT", "NO-TOUCH", "OFF")),
                )
            )
            rows = replies[1]
            if isinstance(rows, Exception):
                raise rows  # not unavailability (raised already): a bug or a refused command
        return session_infos(handles, keys, rows, self.serializer)

    def get_many(self, handles: list[str]) -> Flow[dict[str, dict[str, Any]]]:
        """Flow: data of several sessions in one round trip -> {handle: data} (missing left out)."""
        if not handles:
            return {}
        replies = yield Batch(tuple(Call(("HGETALL", self.key(h))) for h in handles))
        found = {}
        for handle, reply in zip(handles, replies):
            data = self._decode(reply)
            if data is not None:
                found[handle] = data
        return found


def _wall_ms() -> int:
    return int(time.time() * 1000)


def _glob_escape(text: str) -> str:
    """Escape SCAN MATCH's glob characters so `text` matches literally."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
