"""The hash layout: how store operations become Redis commands, written once as generator flows.

A flow is a generator that yields commands (plain data) and receives their replies; the sync and
asyncio runners (`_sync.py`, `_async.py`) perform the I/O. Every multi-step operation (load with
TTL refresh, conditional save, regenerate, SCAN paging) is therefore written exactly once.

Data model (one Redis hash per session, key ``{prefix}{<handle>}``; the braces are a Cluster
hash tag so companion keys of a session share its slot):

- each top-level session key is one field, its value serialized (JSON by default);
- ``$c`` holds the creation time (ms), ``$t`` a per-session idle timeout (ms) when the idle
  timeout is a callable; user keys starting with ``$`` are stored with one more ``$``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .._engine import Destroy, Load, Loaded, Plan, Touch, Write
from .._errors import SessionTooLargeError
from .._record import CREATED, decode_record, field_name
from .._serializers import Serializer

__all__ = ["Batch", "Call", "Dedup", "Flow", "HashLayout", "Script", "SessionInfo"]


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


@dataclass(frozen=True, slots=True)
class Call:
    """One plain Redis command."""

    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Batch:
    """Several plain commands in one round trip (a non-transactional pipeline)."""

    calls: tuple[Call, ...]


Command = Script | Call | Batch
Flow = Generator[Command, Any, Any]

# Reading a session, in one command. The body computes the TTL the session should have now:
# min(idle timeout, what is left of the absolute lifetime), `due` when that is at least
# touch_after more than its PTTL. Returns nil when the key is missing (or past its absolute
# lifetime), -1 when it holds another type, -2 past its absolute lifetime, else
# {pttl, {field, value, ...}, due}. ARGV: now,
# idle, lifetime, touch_after (ms), disable_ttl ('1': never a TTL).
_READ_BODY = """
local k = KEYS[1]
local kind = redis.call('TYPE', k)['ok']
if kind == 'none' then return false end
if kind ~= 'hash' then return -1 end
local now, idle = tonumber(ARGV[1]), tonumber(ARGV[2])
local life, after = tonumber(ARGV[3]), tonumber(ARGV[4])
local meta = redis.call('HMGET', k, '$c', '$t')
local created = tonumber(meta[1])
if meta[2] then idle = tonumber(meta[2]) or idle end
local target = idle
if life > 0 and created then
  local left = created + life - now
  if left <= 0 then return -2 end  -- over (its TTL outlived it, e.g. the lifetime was cut)
  if target <= 0 or left < target then target = left end
end
local pttl = redis.call('PTTL', k)
local due = 0
if ARGV[5] ~= '1' and target > 0 and (pttl < 0 or target - pttl >= after) then due = target end
"""

# The usual read: declared read-only (Redis 7+), so it is served during CLIENT PAUSE WRITE (the
# first step of a failover) and on replicas. A due TTL refresh is left to the end of the
# request: merged into the save, or a separate best-effort PEXPIRE, at most once per touch_after.
_READ = Script.define("#!lua flags=no-writes" + _READ_BODY + """
return {pttl, redis.call('HGETALL', k), due}
""")

# The read with `rolling` (touch_after 0): every read refreshes the TTL, so the refresh is done
# in the same command, best effort (a server refusing writes, MISCONF or OOM, still serves it).
_LOAD = Script.define(_READ_BODY.replace("return -2", "redis.pcall('DEL', k) return false") + """
if due > 0 and type(redis.pcall('PEXPIRE', k, due)) == 'number' then pttl = due end
return {pttl, redis.call('HGETALL', k), 0}
""")

# Write fields, delete fields and set the TTL atomically. ARGV: ttl_ms, mode, n_set, then n_set
# field/value pairs, then fields to delete. Modes: 'u' update only if the key is still a hash
# (no resurrection after a concurrent logout); 'c' create; 'r' replace the whole hash.
# With a second key (regenerate), the write happens only if that old key is still a hash, and
# deletes it; a re-sent regenerate (reply lost) finds the old key gone and the new one present,
# and reports success again, so the write is idempotent under redis-py's automatic retry.
_WRITE = Script.define("""
local k = KEYS[1]
local mode = ARGV[2]
if KEYS[2] then
  if redis.call('TYPE', KEYS[2])['ok'] ~= 'hash' then return redis.call('EXISTS', k) end
elseif mode == 'u' then
  if redis.call('TYPE', k)['ok'] ~= 'hash' then return 0 end
end
local n = tonumber(ARGV[3])
if n > 0 then redis.call('HSET', k, unpack(ARGV, 4, 3 + 2 * n)) end
if mode == 'r' then
  -- Replace: drop the fields not written. HSET comes first so that, under maxmemory, the
  -- script is refused at its first write instead of deleting and then writing past the limit.
  local keep = {}
  for i = 4, 3 + 2 * n, 2 do keep[ARGV[i]] = true end
  for _, f in ipairs(redis.call('HKEYS', k)) do
    if not keep[f] then redis.call('HDEL', k, f) end
  end
end
if #ARGV > 3 + 2 * n then redis.call('HDEL', k, unpack(ARGV, 4 + 2 * n)) end
local ttl = tonumber(ARGV[1])
if ttl > 0 then redis.call('PEXPIRE', k, ttl) end
if KEYS[2] then redis.call('DEL', KEYS[2]) end
return 1
""")

# Metadata of a page of sessions: per key {idle s, pttl ms, memory bytes, fields, {$c, user}},
# or 0 when the key is gone or not a hash; -1 where the server refuses OBJECT/MEMORY.
_DESCRIBE = Script.define("""
local out = {}
for i, k in ipairs(KEYS) do
  if redis.call('TYPE', k)['ok'] ~= 'hash' then
    out[i] = 0
  else
    local idle = redis.pcall('OBJECT', 'IDLETIME', k)
    if type(idle) ~= 'number' then idle = -1 end
    local mem = redis.pcall('MEMORY', 'USAGE', k, 'SAMPLES', '0')
    if type(mem) ~= 'number' then mem = -1 end
    out[i] = {idle, redis.call('PTTL', k), mem, redis.call('HLEN', k),
              redis.call('HMGET', k, '$c', ARGV[1])}
  end
end
return out
""")

SCRIPTS = (_READ, _LOAD, _WRITE, _DESCRIBE)


class HashLayout:
    """Flows for the default layout: one hash per session, delta saves.

    Args:
        prefix: key prefix (default ``"sess:"``).
        serializer: value serializer (for `get` / `set` / `all`).
        max_size: limit of a serialized session in bytes.
        scan_count: COUNT hint for SCAN.
        disable_ttl: never set a TTL (sessions live until destroyed).
    """

    __slots__ = ("_match", "disable_ttl", "max_size", "prefix", "scan_count", "serializer")

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

    def key(self, handle: str) -> str:
        """The Redis key of a session handle."""
        return f"{self.prefix}{{{handle}}}"

    def handle_of(self, key: bytes | str) -> str | None:
        """The handle in a Redis key, or None if the key is not one of ours."""
        text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
        inner = text[len(self.prefix):]
        if text.startswith(self.prefix) and inner[:1] == "{" and inner[-1:] == "}":
            return inner[1:-1]
        return None

    def _ttl(self, ttl_ms: int) -> int:
        return 0 if self.disable_ttl else ttl_ms

    # -- what the adapters use --------------------------------------------------------------

    def load(self, spec: Load) -> Flow:
        """Flow: read a session -> `Loaded` or None. With `rolling` (touch_after 0) the TTL is
        refreshed in the same command; otherwise `Loaded.refresh_ms` says a refresh is due."""
        script = _LOAD if spec.touch_after_ms == 0 else _READ
        reply = yield script((self.key(spec.handle),),
                             (spec.now_ms, spec.idle_ms, spec.lifetime_ms, spec.touch_after_ms,
                              int(self.disable_ttl)))
        if reply is None:
            return None
        if reply == -1:
            return Loaded(-1, {}, foreign=True)
        if reply == -2:  # past its absolute lifetime: gone for good (rare: an extra command)
            yield Call(("DEL", self.key(spec.handle)))
            return None
        pttl, flat, due = reply
        return Loaded(pttl, dict(zip(flat[::2], flat[1::2])), refresh_ms=due)

    def commit(self, plan: Plan) -> Flow:
        """Flow: run a plan -> True if it applied (False: the session was gone meanwhile)."""
        if isinstance(plan, Write):
            return (yield self._write(plan.handle, plan.fields, plan.delete, plan.ttl_ms,
                                           "c" if plan.create else "u", plan.replace)) == 1
        if isinstance(plan, Touch):
            if self.disable_ttl:
                return (yield Call(("EXISTS", self.key(plan.handle)))) == 1
            return (yield Call(("PEXPIRE", self.key(plan.handle), plan.ttl_ms))) == 1
        if isinstance(plan, Destroy):
            yield Call(("DEL", self.key(plan.handle)))
        return True

    def _write(
        self,
        handle: str,
        fields: Mapping[str, bytes],
        delete: Iterable[str],
        ttl_ms: int,
        mode: str,
        replace: str | None = None,
    ) -> Script:
        keys = (self.key(handle),) if replace is None else (self.key(handle), self.key(replace))
        args: list[Any] = [self._ttl(ttl_ms), mode, len(fields)]
        for item in fields.items():
            args.extend(item)
        args.extend(delete)
        return _WRITE(keys, tuple(args))

    # -- the connect-redis store API --------------------------------------------------------

    def get(self, handle: str) -> Flow:
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

    def set(self, handle: str, data: Mapping[str, Any], ttl_ms: int, now_ms: int) -> Flow:
        """Flow: replace a session's data (creating it), with a TTL; a TTL <= 0 deletes it."""
        if ttl_ms <= 0 and not self.disable_ttl:
            yield Call(("DEL", self.key(handle)))
            return False
        fields = {field_name(k): self.serializer.dumps(v) for k, v in data.items()}
        size = sum(len(k.encode()) + len(v) for k, v in fields.items())
        if size > self.max_size:
            raise SessionTooLargeError(size, self.max_size)
        fields[CREATED] = str(now_ms).encode()
        yield self._write(handle, fields, (), ttl_ms, "r")
        return True

    def destroy(self, *handles: str) -> Flow:
        """Flow: delete sessions -> how many existed."""
        if not handles:
            return 0
        return (yield Call(("UNLINK", *(self.key(h) for h in handles))))

    def touch(self, handle: str, ttl_ms: int) -> Flow:
        """Flow: refresh a session's TTL -> False if it does not exist."""
        return (yield from self.commit(Touch(handle, ttl_ms)))

    def scan_page(self, cursor: int, handle_prefix: str = "") -> Flow:
        """Flow: one SCAN page -> (next cursor, handles). SCAN, never KEYS: it never blocks.

        `handle_prefix` keeps only handles starting with it (matched by Redis, not here).
        """
        match = self._match
        if handle_prefix:
            match = f"{_glob_escape(self.prefix)}{{{_glob_escape(handle_prefix)}*}}"
        cursor, keys = yield Call(("SCAN", cursor, "MATCH", match, "COUNT", self.scan_count))
        handles = [h for h in map(self.handle_of, keys) if h is not None]
        return int(cursor), handles

    def describe(self, handles: list[str], user_field: str) -> Flow:
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
        replies = yield Batch((
            Call(("CLIENT", "NO-TOUCH", "ON")),
            Call(("EVAL", _DESCRIBE.source, len(keys), *keys, field_name(user_field))),
            Call(("CLIENT", "NO-TOUCH", "OFF")),
        ))
        rows = replies[1]
        if isinstance(rows, Exception):
            raise rows  # not unavailability (that raised already): a bug or a refused command
        infos = []
        for handle, row in zip(handles, rows):
            if not isinstance(row, list):
                continue  # gone meanwhile, or not a hash
            idle, pttl, size, length, meta = row
            if pttl == -2 or not isinstance(meta, list):
                continue
            infos.append(SessionInfo(
                handle=handle,
                key=self.key(handle),
                ttl_ms=pttl,
                created_ms=_int_or_none(meta[0]),
                user=self._user(meta[1]),
                size=size if size >= 0 else None,
                idle_s=idle if idle >= 0 else None,
                fields=length,
            ))
        return infos

    def _user(self, raw: Any) -> str | None:
        if not isinstance(raw, bytes):
            return None
        try:
            value = self.serializer.loads(raw)
        except ValueError:
            return None
        if isinstance(value, dict):
            value = value.get("name") or value.get("id") or value.get("email") or value
        return None if value is None else str(value)

    def get_many(self, handles: list[str]) -> Flow:
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


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What an operator sees of a stored session (no data, no id: the id is never stored).

    Attributes:
        handle: the session's handle (the SHA-256 of its id); `key` is its Redis key.
        ttl_ms: remaining time to live in ms (-1: no expiry).
        created_ms: creation time (ms since the epoch), None if the payload is not ours.
        user: the value of the user field (``"user"`` by default), as text, if any.
        size: bytes of memory Redis uses for the key (MEMORY USAGE), if available.
        idle_s: seconds since the key was last read or written (OBJECT IDLETIME), if available.
        fields: number of hash fields (top-level keys plus metadata).
    """

    handle: str
    key: str
    ttl_ms: int
    created_ms: int | None
    user: str | None
    size: int | None
    idle_s: int | None
    fields: int


def _glob_escape(text: str) -> str:
    """Escape SCAN MATCH's glob characters so `text` matches literally."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _int_or_none(raw: Any) -> int | None:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


class Dedup:
    """Remembers handles already returned (SCAN may return a key more than once)."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def fresh(self, handles: Iterable[str]) -> list[str]:
        """The handles not returned before."""
        out = [h for h in dict.fromkeys(handles) if h not in self.seen]
        self.seen.update(out)
        return out
