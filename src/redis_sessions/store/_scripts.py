"""The Lua scripts of the hash layout, and their reply contracts.

Each script is one atomic step of a flow (`_layouts.HashLayout`); the comment above it says what
it reads (KEYS, ARGV) and answers. The negative integer replies shared by several scripts have
names here, for the flows and for `MemoryStore`'s interpreter of the same scripts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .._errors import ConfigError
from .._serializers import Serializer
from ._commands import Script

__all__ = [
    "ALL_TAKEN",
    "DESCRIBE",
    "EXPIRED",
    "FOREIGN",
    "LOCK_AND_READ",
    "LOCK_HELD",
    "NOT_AN_INTEGER",
    "READ",
    "READ_ROLLING",
    "REGENERATE_DROP",
    "REGENERATE_TAKE",
    "SCRIPTS",
    "WRITE",
    "counter_codec",
    "write_args",
]

# Replies (the reads answer nil for a missing session, the writes 0 for one gone meanwhile).
FOREIGN = -1  # the key holds another type: not a session
EXPIRED = -2  # past its absolute lifetime (or, with disable_ttl, idle for too long)
LOCK_HELD = -3  # another request holds the session's lock, or this request's lock expired
NOT_AN_INTEGER = -4  # as {-4, field}: a field to increment does not hold an integer
ALL_TAKEN = -5  # every candidate id of a create exists already

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
READ = Script.define(
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
READ_ROLLING = Script.define(_REFRESHING_READ)

# The read of a request that takes the session's lock (KEYS[2], ARGV[2] token, ARGV[3] lock
# TTL ms): the lock is taken in the same command (a re-sent command finds its own token), then
# the session read as with `rolling`. Returns -3 while another request holds the lock; a missing
# or foreign session releases the lock at once (nothing to protect).
LOCK_AND_READ = Script.define(
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
WRITE = Script.define("""
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


def write_args(
    header: str,
    seed: Iterable[bytes],
    fields: Mapping[str, bytes],
    pairs: Iterable[tuple[str, Any]],
    delete: Iterable[str],
) -> tuple[Any, ...]:
    """WRITE's ARGV: the header, the seed pairs, the field/value pairs to set, the pairs to
    increment and to set where absent (`pairs`), then the fields to delete."""
    args: list[Any] = [header, *seed]
    for item in fields.items():
        args.extend(item)
    for pair in pairs:
        args.extend(pair)
    args.extend(delete)
    return tuple(args)


def counter_codec(serializer: Serializer, incr: tuple[tuple[str, int], ...]) -> str:
    """WRITE's counter codec word for `serializer` ('-' without counters to increment)."""
    if not incr:
        return "-"
    name = getattr(serializer, "name", "")
    if name == "json":
        return "j"
    if name == "msgpack":
        return "m"
    raise ConfigError(f"incr() needs the json or msgpack serializer, not {name!r}")


# Regenerate on a Cluster, first step (the old session's slot): the old session's fields, if
# it is still a hash and, with a lock (KEYS[2], token ARGV[1]), the lock is still ours
# (-3 otherwise); 0 when it is gone (its lock, ours, is released then: nothing to protect).
REGENERATE_TAKE = Script.define("""
if KEYS[2] and redis.call('GET', KEYS[2]) ~= ARGV[1] then return -3 end
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then
  if KEYS[2] then redis.call('DEL', KEYS[2]) end
  return 0
end
return {redis.call('HGETALL', KEYS[1])}
""")

# Regenerate on a Cluster, last step: delete the old session, and its lock if still ours.
REGENERATE_DROP = Script.define("""
redis.call('DEL', KEYS[1])
if KEYS[2] and redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
""")

# Metadata of a page of sessions: per key {idle s, pttl ms, memory bytes, fields, {$c, user}},
# or 0 when the key is gone or not a hash; -1 where the server refuses OBJECT/MEMORY.
DESCRIBE = Script.define("""
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

# Every script of the layout.
SCRIPTS = (READ, READ_ROLLING, LOCK_AND_READ, WRITE, REGENERATE_TAKE, REGENERATE_DROP, DESCRIBE)
