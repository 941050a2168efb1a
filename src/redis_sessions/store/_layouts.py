"""The hash layout: how store operations become Redis commands, written once as generator flows.

A flow is a generator that yields commands (plain data) and receives their replies; the sync and
asyncio runners (`_sync.py`, `_async.py`) perform the I/O. Every multi-step operation (load with
TTL refresh, conditional save, regenerate, SCAN paging) is therefore written exactly once.

Data model (one Redis hash per session, key ``{prefix}{<handle>}``; the braces are a Cluster
hash tag so companion keys of a session share its slot):

- each top-level session key is one field, its value serialized (JSON by default);
- ``$c`` holds the creation time (ms), ``$t`` a per-session idle timeout (ms) when the idle
  timeout is a callable, ``$a`` the last access (ms) with `disable_ttl` (the reads enforce the
  idle timeout from it); user keys starting with ``$`` are stored with one more ``$``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import threading
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from .._config import MAX_SECONDS
from .._errors import ConfigError, SessionLockError, SessionStateError, SessionTooLargeError
from .._plans import DONE, Committed, Destroy, Load, Loaded, Plan, Release, Touch, Write
from .._record import ACCESSED, CREATED, decode_record, field_name
from .._serializers import Serializer

__all__ = [
    "Batch",
    "Call",
    "Dedup",
    "Durable",
    "Flow",
    "HashLayout",
    "Script",
    "SessionInfo",
    "Sleep",
]


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
    when that many replicas (and the local AOF) have it. Fewer acknowledgements raise a
    NOREPLICAS error (the write itself stays applied: it is idempotent, a retry is safe)."""

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

    def check(self, acks: Any) -> None:
        """Raise NOREPLICAS when `acks` (WAIT's or WAITAOF's reply) is short."""
        local, replicas = (acks[0], acks[1]) if isinstance(acks, list) else (1, acks)
        if local < 1 or replicas < self.replicas:
            what = f"{replicas} of {self.replicas} replicas" + ("" if local else ", no local AOF")
            raise ResponseError(
                f"NOREPLICAS {what} acknowledged the write within {self.timeout_ms} ms"
            )


Command = Script | Call | Batch | Sleep | Durable

MAX_TTL_MS = int(MAX_SECONDS * 1000)
Flow = Generator[Command, Any, Any]

# Reading a session, in one command. The body computes the TTL the session should have now:
# min(idle timeout, what is left of the absolute lifetime), `due` when that is at least
# touch_after more than its PTTL. Returns nil when the key is missing (or past its absolute
# lifetime), -1 when it holds another type, -2 past its absolute lifetime (or, with
# disable_ttl, idle for longer than the idle timeout), else {pttl, {field, value, ...}, due}.
# ARGV[1]: "now idle lifetime touch_after disable_ttl" (ms; disable_ttl 1: never a TTL, `due`
# is then 1 when the last access `$a` is to be rewritten), one argument.
_READ_BODY = """
local k = KEYS[1]
local kind = redis.call('TYPE', k)['ok']
if kind == 'none' then return false end
if kind ~= 'hash' then return -1 end
local a = {}
for w in string.gmatch(ARGV[1], '%S+') do a[#a + 1] = tonumber(w) end
local now, idle, life, after, off = a[1], a[2], a[3], a[4], a[5]
local meta = redis.call('HMGET', k, '$c', '$t', '$a')
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
if off == 1 then
  -- No TTL: the idle timeout is checked against the last access ($a, ms); a session from
  -- before $a existed counts as accessed now (its clock starts with this read's refresh).
  local last = tonumber(meta[3]) or now
  if idle > 0 and now - last > idle then return -2 end
  if idle > 0 and (not meta[3] or now - last >= after) then due = 1 end
elseif target > 0 and (pttl < 0 or target - pttl >= after) then due = target end
"""

# The usual read: declared read-only (Redis 7+), so it is served during CLIENT PAUSE WRITE (the
# first step of a failover) and on replicas. A due TTL refresh is left to the end of the
# request: merged into the save, or a separate best-effort PEXPIRE, at most once per touch_after.
_READ = Script.define(
    "#!lua flags=no-writes"
    + _READ_BODY
    + """
return {pttl, redis.call('HGETALL', k), due}
"""
)

# The read that refreshes the TTL (when due) in the same command, best effort (a server
# refusing writes, MISCONF or OOM, still serves it), and deletes a session past its lifetime.
_REFRESHING_READ = (
    _READ_BODY.replace("return -2", "redis.pcall('DEL', k) return false")
    + """
if due > 0 and off == 1 then redis.pcall('HSET', k, '$a', now)
elseif due > 0 and type(redis.pcall('PEXPIRE', k, due)) == 'number' then pttl = due end
return {pttl, redis.call('HGETALL', k), 0}
"""
)

# The read with `rolling` (touch_after 0): every read refreshes the TTL.
_LOAD = Script.define(_REFRESHING_READ)

# The read of a request that takes the session's lock (KEYS[2], ARGV[2] token, ARGV[3] lock
# TTL ms): the lock is taken in the same command (a re-sent command finds its own token), then
# the session read as with `rolling`. Returns -3 while another request holds the lock; a missing
# or foreign session releases the lock at once (nothing to protect).
_LOCKED = Script.define(
    """
local got = redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3])
if not got and redis.call('GET', KEYS[2]) ~= ARGV[2] then return -3 end
local r = (function()
"""
    + _REFRESHING_READ
    + """
end)()
if type(r) ~= 'table' then redis.call('DEL', KEYS[2]) end
return r
"""
)

# Every write of a session, atomically. KEYS[1] the session; ARGV[1] a header of
# space-separated words (one argument: redis-py's cost grows with their number): ttl ms, mode,
# the counts of field/value pairs to set, to increment and to set where absent, the KEYS
# indexes (0 for none) of the old session (regenerate), the nonce log and the lock, release
# ('1'), the counter codec ('j' JSON, 'm' msgpack, '-'), the nonce and the lock token ('-' for
# none), the count of seed pairs, the count of spare candidates (create: their keys and nonce
# logs come last in KEYS, in pairs); then the seed pairs, the pairs, then the fields to delete.
# Modes: 'u' update only if the key is still a hash (no resurrection after a concurrent
# logout); 'c' create, in the first of KEYS[1] and the spares that does not exist; 'r'
# replace the whole hash; 't' refresh the TTL; 'd' delete; 'n' nothing
# (release the lock). With an old key (regenerate), the write happens only if that key is
# still a hash: its fields are copied to the new key, the changes applied on top, and the old
# key deleted. On a Cluster the old key is in another slot: the old fields come as seed pairs
# (read by the previous command) and the old key is deleted by the next. Returns 0 when
# refused (session gone), n, or {n, values...} (the stored values of the incremented and
# set-where-absent fields), where n is the candidate written (1: KEYS[1], 2: the first spare),
# -3 when the lock is no longer ours, {-4, field} when a field to increment does not hold an
# integer, -5 when every candidate of a create exists already.
# Re-sent after a lost reply (redis-py retries), a write stays applied once: a regenerate finds
# the old key gone and its new key present; a write with a nonce finds the nonce in the log.
_WRITE = Script.define("""
local h = {}
for w in string.gmatch(ARGV[1], '%S+') do h[#h + 1] = w end
local k, ttl, mode = KEYS[1], tonumber(h[1]), h[2]
local ns, ni, nx = tonumber(h[3]), tonumber(h[4]), tonumber(h[5])
local old, log, lock = KEYS[tonumber(h[6])], KEYS[tonumber(h[7])], KEYS[tonumber(h[8])]
local release, codec, nonce, token = lock and h[9] == '1', h[10], h[11], h[12]
local sp = 2 + 2 * (tonumber(h[13]) or 0)
local ip = sp + 2 * ns
local xp = ip + 2 * ni
local dp = xp + 2 * nx
-- HSET / HDEL of t[from..to] in chunks: unpack() refuses more than about 8,000 values.
local function chunked(cmd, key, t, from, to)
  for i = from, to, 1000 do redis.call(cmd, key, unpack(t, i, math.min(i + 999, to))) end
end
local pick = mode == 'c' and 0 or 1  -- which candidate key was written (create)
local function stored()
  if ni + nx == 0 then return pick end
  local out = {pick}
  for i = ip, dp - 1, 2 do out[#out + 1] = redis.call('HGET', k, ARGV[i]) or false end
  return out
end
local function refused(result)
  if release then redis.call('DEL', lock) end
  return result
end
local function done(result)
  if log then
    local seen = redis.call('GET', log) or ''
    redis.call('SET', log, string.sub(seen, -119) .. nonce .. ' ', 'PX', 60000)
  end
  if release then redis.call('DEL', lock) end
  return result
end
if mode == 'c' then
  -- A new id must be free (a weak genid may repeat one: two users would share a session).
  -- Take the first free candidate, KEYS[1] then the spares, or the one this very write took
  -- already (re-sent after a lost reply: the nonce is in that candidate's log). Without a
  -- nonce, a regenerate whose old key is gone was applied already (or logged out): as before.
  if old and not log and redis.call('TYPE', old)['ok'] ~= 'hash' then
    return refused(redis.call('EXISTS', k))
  end
  local nsp, first = tonumber(h[14]) or 0, #KEYS - 2 * (tonumber(h[14]) or 0)
  for i = 0, nsp do
    local c, l = k, log
    if i > 0 then c, l = KEYS[first + 2 * i - 1], log and KEYS[first + 2 * i] end
    local seen = l and redis.call('GET', l)
    if redis.call('EXISTS', c) == 0 then
      pick, k, log = i + 1, c, l
      break
    elseif seen and string.find(seen, nonce, 1, true) then
      pick, k = i + 1, c
      return stored()
    end
  end
  if pick == 0 then return refused(-5) end
elseif log then
  local seen = redis.call('GET', log)
  if seen and string.find(seen, nonce, 1, true) then return stored() end
end
if lock and redis.call('GET', lock) ~= token then return -3 end
if mode == 'n' then return done(1) end
if mode == 'd' then
  redis.call('DEL', k)
  return done(1)
end
if mode == 't' then
  if ttl > 0 then return done(redis.call('PEXPIRE', k, ttl)) end
  return done(redis.call('EXISTS', k))
end
if old then
  if redis.call('TYPE', old)['ok'] ~= 'hash' then return refused(redis.call('EXISTS', k)) end
  -- Regenerate: the new key starts as a copy of the old one, as it is now.
  local all = redis.call('HGETALL', old)
  chunked('HSET', k, all, 1, #all)
elseif sp > 2 then
  chunked('HSET', k, ARGV, 2, sp - 1)
elseif mode == 'u' then
  if redis.call('TYPE', k)['ok'] ~= 'hash' then return refused(0) end
end
-- Counters are checked before anything is written: a bad one refuses the whole write.
local counts = {}
for i = ip, xp - 1, 2 do
  local v, n = redis.call('HGET', k, ARGV[i]), 0
  if v and codec == 'm' then
    local ok, d = pcall(cmsgpack.unpack, v)
    n = ok and type(d) == 'number' and d == math.floor(d) and d or nil
  elseif v then
    n = string.match(v, '^%-?%d+$') and tonumber(v) or nil
  end
  if n == nil then return refused({-4, ARGV[i]}) end
  counts[#counts + 1] = n + tonumber(ARGV[i + 1])
end
chunked('HSET', k, ARGV, sp, ip - 1)
if mode == 'r' then
  -- Replace: drop the fields not written. HSET comes first so that, under maxmemory, the
  -- script is refused at its first write instead of deleting and then writing past the limit.
  local keep = {}
  for i = sp, ip - 1, 2 do keep[ARGV[i]] = true end
  for _, f in ipairs(redis.call('HKEYS', k)) do
    if not keep[f] then redis.call('HDEL', k, f) end
  end
end
for i = ip, xp - 1, 2 do
  if codec == 'm' then
    redis.call('HSET', k, ARGV[i], cmsgpack.pack(counts[(i - ip) / 2 + 1]))
  else
    redis.call('HINCRBY', k, ARGV[i], ARGV[i + 1])  -- exact in 64 bits, unlike Lua numbers
  end
end
for i = xp, dp - 1, 2 do redis.call('HSETNX', k, ARGV[i], ARGV[i + 1]) end
chunked('HDEL', k, ARGV, dp, #ARGV)
if ttl > 0 then redis.call('PEXPIRE', k, ttl) end
if old then redis.call('DEL', old) end
return done(stored())
""")

# Regenerate on a Cluster, first step (the old session's slot): the old session's fields, if
# it is still a hash and, with a lock (KEYS[2], token ARGV[1]), the lock is still ours
# (-3 otherwise); 0 when it is gone (its lock, ours, is released then: nothing to protect).
_TAKE = Script.define("""
if KEYS[2] and redis.call('GET', KEYS[2]) ~= ARGV[1] then return -3 end
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then
  if KEYS[2] then redis.call('DEL', KEYS[2]) end
  return 0
end
return {redis.call('HGETALL', KEYS[1])}
""")

# Regenerate on a Cluster, last step: delete the old session, and its lock if still ours.
_DROP = Script.define("""
redis.call('DEL', KEYS[1])
if KEYS[2] and redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
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

SCRIPTS = (_READ, _LOAD, _LOCKED, _WRITE, _TAKE, _DROP, _DESCRIBE)


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

    def load(self, spec: Load) -> Flow:
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
        script = _LOAD if spec.touch_after_ms == 0 else _READ
        reply = yield script((key,), args)
        if reply == -2:  # past its absolute lifetime: gone for good (rare: an extra command)
            yield Call(("DEL", key))
            return None
        return self._loaded(reply)

    def _load_locked(self, spec: Load, key: str, args: tuple[Any, ...]) -> Flow:
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
                reply = yield _LOCKED(keys, (*args, spec.lock, spec.lock_ttl_ms))
                if reply != -3:
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
        if reply == -1:
            return Loaded(pttl_ms=-1, fields={}, foreign=True)
        pttl, flat, due = reply
        return Loaded(pttl_ms=pttl, fields=dict(zip(flat[::2], flat[1::2])), refresh_ms=due)

    def commit(self, plan: Plan) -> Flow:
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

    def _regenerate_across_slots(self, plan: Write, old: str) -> Flow:
        # The old and the new key live in different slots (in general), and no script may
        # touch two: read the old session (checking the lock), create the new one from it
        # with this request's changes, delete the old one. Between the last two commands both
        # exist, for one round trip; never neither. A write to the old session landing in
        # that window is lost with it, as a write after a local regenerate is refused.
        hold = plan.hold
        lock_key = self.lock_key(old) if hold is not None else None
        keys = (self.key(old),) + ((lock_key,) if lock_key else ())
        taken = yield _TAKE(keys, (hold.token if hold else "-",))
        if taken == -3:
            raise SessionLockError("lock lost")
        if taken == 0:
            # Logged out meanwhile (not resurrected under a new id), or this regenerate was
            # sent before and applied: the new session then exists (a rare extra command).
            return Committed((yield Call(("EXISTS", self.key(plan.handle)))) == 1)
        result = yield from self._create(plan, taken[0])
        yield _DROP(keys, (hold.token if hold and hold.release else "-",))
        return result

    def _create(self, plan: Write, seed: list[bytes] | None = None) -> Flow:
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
            if pick == -5:
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
        if reply == -3:
            if isinstance(plan, Release):
                return DONE  # expired already: nothing was written, nothing to free
            raise SessionLockError("lock lost")
        if isinstance(reply, list):
            if reply[0] == -4:
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
        args: list[Any] = [
            f"{self._ttl(ttl_ms)} {mode} {len(fields)} {len(incr)} {len(setnx)} "
            f"{old_index} {log} {lock} {int(release)} {self._codec(incr)} {nonce or '-'} "
            f"{token or '-'} {len(seed or ()) // 2} {spares}"
        ]
        args.extend(seed or ())
        for item in fields.items():
            args.extend(item)
        for pair in (*incr, *setnx):
            args.extend(pair)
        args.extend(delete)
        return _WRITE(tuple(keys), tuple(args))

    def _codec(self, incr: tuple[tuple[str, int], ...]) -> str:
        if not incr:
            return "-"
        name = getattr(self.serializer, "name", "")
        if name == "json":
            return "j"
        if name == "msgpack":
            return "m"
        raise ConfigError(f"incr() needs the json or msgpack serializer, not {name!r}")

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
        yield self.durable(self._write(handle, fields, (), ttl_ms, "r"))
        return True

    def destroy(self, *handles: str) -> Flow:
        """Flow: delete sessions -> how many existed."""
        if not handles:
            return 0
        if self.cluster:  # one key per command: the keys are spread over the slots
            replies = yield Batch(
                tuple(Call(("UNLINK", self.key(h))) for h in handles), strict=True
            )
            return sum(replies)
        return (yield self.durable(Call(("UNLINK", *(self.key(h) for h in handles)))))

    def touch(self, handle: str, ttl_ms: int) -> Flow:
        """Flow: refresh a session's TTL -> False if it does not exist. A TTL under 1 ms
        raises `ValueError` (``PEXPIRE`` would delete the session)."""
        if ttl_ms <= 0:
            raise ValueError(f"touch: the TTL must be at least 1 ms, got {ttl_ms} ms")
        result = yield from self.commit(Touch(handle=handle, ttl_ms=ttl_ms))
        return result.applied

    def scan_page(self, cursor: int, handle_prefix: str = "", node: Any = None) -> Flow:
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
        user = field_name(user_field)
        if self.cluster:
            # Plain commands, five per key, in one pipeline: a script per key would cost the
            # Cluster client a COMMAND GETKEYS round trip each to find its slot. No NO-TOUCH
            # (the pipeline spreads over several connections): OBJECT IDLETIME comes first.
            per_key = 5
            replies = yield Batch(
                tuple(
                    call
                    for key in keys
                    for call in (
                        Call(("OBJECT", "IDLETIME", key)),
                        Call(("PTTL", key)),
                        Call(("MEMORY", "USAGE", key, "SAMPLES", "0")),
                        Call(("HLEN", key)),
                        Call(("HMGET", key, CREATED, user)),
                    )
                )
            )
            rows: list[Any] = []
            for i in range(len(keys)):
                idle, pttl, size, length, meta = replies[i * per_key : (i + 1) * per_key]
                if isinstance(length, Exception) or isinstance(meta, Exception) or idle is None:
                    rows.append(0)  # not a hash, or gone
                    continue
                rows.append([_number_or(idle, -1), pttl, _number_or(size, -1), length, meta])
        else:
            replies = yield Batch(
                (
                    Call(("CLIENT", "NO-TOUCH", "ON")),
                    Call(("EVAL", _DESCRIBE.source, len(keys), *keys, user)),
                    Call(("CLIENT", "NO-TOUCH", "OFF")),
                )
            )
            rows = replies[1]
            if isinstance(rows, Exception):
                raise rows  # not unavailability (raised already): a bug or a refused command
        infos: list[SessionInfo] = []
        for handle, row in zip(handles, rows):
            if not isinstance(row, list):
                continue  # gone meanwhile, or not a hash
            idle, pttl, size, length, meta = row
            if pttl == -2 or not isinstance(meta, list):
                continue
            infos.append(
                SessionInfo(
                    handle=handle,
                    key=self.key(handle),
                    ttl_ms=pttl,
                    created_ms=_int_or_none(meta[0]),
                    user=self._user(meta[1]),
                    size=size if size >= 0 else None,
                    idle_s=idle if idle >= 0 else None,
                    fields=length,
                )
            )
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


def _wall_ms() -> int:
    return int(time.time() * 1000)


def _glob_escape(text: str) -> str:
    """Escape SCAN MATCH's glob characters so `text` matches literally."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _number_or(reply: Any, default: int) -> int:
    """An integer reply, or `default` for an error (a refused command) or nil."""
    return reply if isinstance(reply, int) else default


def _int_or_none(raw: Any) -> int | None:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


class Waiters:
    """The requests of this process waiting for each session's lock (`Load.lock_waiters`).

    Each entry is the waiter's deadline: one that leaves without saying so (its flow dropped
    mid-wait) stops counting when its wait would have ended anyway. Threads and asyncio tasks
    both use it; no call blocks.
    """

    __slots__ = ("_guard", "_waiting")

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._waiting: dict[str, list[float]] = {}

    def _live(self, handle: str) -> list[float]:
        now = time.monotonic()
        live = [d for d in self._waiting.get(handle, ()) if d > now]
        if live:
            self._waiting[handle] = live
        else:
            self._waiting.pop(handle, None)
        return live

    def full(self, handle: str, bound: int) -> bool:
        """Whether `bound` requests wait for this session's lock already."""
        with self._guard:
            return len(self._live(handle)) >= bound

    def join(self, handle: str, bound: int, deadline: float) -> bool:
        """Count one more waiter until `deadline`; False (not counted) when full."""
        with self._guard:
            live = self._live(handle)
            if len(live) >= bound:
                return False
            self._waiting[handle] = [*live, deadline]
            return True

    def leave(self, handle: str, deadline: float) -> None:
        """Stop counting a waiter that `join` counted."""
        with self._guard:
            entries = self._waiting.get(handle, [])
            if deadline in entries:
                entries.remove(deadline)
            if not entries:
                self._waiting.pop(handle, None)


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
