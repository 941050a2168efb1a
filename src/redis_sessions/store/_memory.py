"""`MemoryStore`: the store contract in process memory, for your app's tests.

It is a `RedisStore` whose client is a tiny in-process interpreter of the few commands the
store's flows send (the Lua scripts are implemented in Python), so it runs the very same
flows as the Redis store. Not for production: nothing is shared between processes, nothing
survives a restart.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from ._async import AsyncRedisStore
from ._scripts import (
    ALL_TAKEN,
    DESCRIBE,
    EXPIRED,
    LOCK_AND_READ,
    LOCK_HELD,
    NOT_AN_INTEGER,
    READ,
    READ_ROLLING,
)
from ._sync import RedisStore

__all__ = ["AsyncMemoryStore", "MemoryStore"]

Hash = dict[bytes, bytes]


def _b(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A Redis MATCH glob (as the flows write it: *, ? and backslash escapes) as a regex."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out), re.DOTALL)


class _MemoryRedis:
    """The subset of Redis the store uses, with expiry, behind one lock."""

    def __init__(self) -> None:
        self._hashes: dict[str, Hash] = {}
        self._strings: dict[str, bytes] = {}  # locks and nonce logs
        self._expires: dict[str, int] = {}
        self._lock = threading.RLock()

    @staticmethod
    def _now() -> int:
        return int(time.time() * 1000)

    def _get(self, key: str) -> Hash | None:
        deadline = self._expires.get(key)
        if deadline is not None and deadline <= self._now():
            self._delete(key)
        return self._hashes.get(key)

    def _delete(self, key: str) -> int:
        self._expires.pop(key, None)
        found = self._strings.pop(key, None) is not None
        return 1 if self._hashes.pop(key, None) is not None or found else 0

    def _string(self, key: str) -> bytes | None:
        deadline = self._expires.get(key)
        if deadline is not None and deadline <= self._now():
            self._delete(key)
        return self._strings.get(key)

    def _set_string(self, key: str, value: bytes, px: int) -> None:
        self._strings[key] = value
        self._expires[key] = self._now() + px

    def _pttl(self, key: str) -> int:
        deadline = self._expires.get(key)
        return -1 if deadline is None else max(deadline - self._now(), 0)

    def _pexpire(self, key: str, ttl: int) -> int:
        if self._get(key) is None:
            return 0
        self._expires[key] = self._now() + ttl
        return 1

    def execute_command(self, name: str, *args: Any) -> Any:
        with self._lock:
            command = name.upper()
            if command in ("EVALSHA", "EVAL"):
                script, nkeys = args[0], int(args[1])
                keys = [str(k) for k in args[2 : 2 + nkeys]]
                argv = [_b(a) for a in args[2 + nkeys :]]
                if script in (READ_ROLLING.sha, READ_ROLLING.source):
                    return self._load(keys[0], argv, refresh=True)
                if script in (READ.sha, READ.source):
                    return self._load(keys[0], argv, refresh=False)
                if script in (LOCK_AND_READ.sha, LOCK_AND_READ.source):
                    return self._load_locked(keys, argv)
                if script in (DESCRIBE.sha, DESCRIBE.source):
                    return [self._describe(key, argv[0]) for key in keys]
                return self._write(keys, argv)
            key = str(args[0]) if args else ""
            if command == "HGETALL":
                return dict(self._get(key) or {})
            if command in ("DEL", "UNLINK"):
                return sum(
                    self._delete(str(k))
                    for k in args
                    if self._get(str(k)) is not None or self._string(str(k)) is not None
                )
            if command == "GET":
                return self._string(key)
            if command == "EXISTS":
                return int(self._get(key) is not None)
            if command == "PEXPIRE":
                return self._pexpire(key, int(args[1]))
            if command == "SCAN":
                pattern = _glob_regex(str(args[2]))
                keys = [k for k in list(self._hashes) if self._get(k) is not None]
                return 0, [k.encode() for k in keys if pattern.fullmatch(k)]
            if command == "CLIENT":
                return True
            raise NotImplementedError(f"MemoryStore does not implement {command}")

    def _load(self, key: str, argv: list[bytes], *, refresh: bool) -> Any:
        fields = self._get(key)
        if fields is None:
            return None
        now, idle, life, after, no_ttl = (int(a) for a in argv[0].split())
        if b"$t" in fields:
            idle = int(fields[b"$t"])
        target = idle
        created = fields.get(b"$c")
        if life > 0 and created is not None:
            left = int(created) + life - now
            if left <= 0:
                if refresh:
                    self._delete(key)
                    return None
                return EXPIRED
            if target <= 0 or left < target:
                target = left
        pttl = self._pttl(key)
        due = 0
        if no_ttl:
            seen = fields.get(b"$a")
            last = now if seen is None else int(seen)
            if idle > 0 and now - last > idle:
                if refresh:
                    self._delete(key)
                    return None
                return EXPIRED
            if idle > 0 and (seen is None or now - last >= after):
                due = 1
        elif target > 0 and (pttl < 0 or target - pttl >= after):
            due = target
        if refresh and due:
            if no_ttl:
                fields[b"$a"] = str(now).encode()
            else:
                self._pexpire(key, due)
                pttl = due
            due = 0
        flat: list[bytes] = []
        for item in fields.items():
            flat.extend(item)
        return [pttl, flat, due]

    def _describe(self, key: str, user_field: bytes) -> Any:
        fields = self._get(key)
        if fields is None:
            return 0
        size = 64 + sum(len(k) + len(v) + 16 for k, v in fields.items())
        return [0, self._pttl(key), size, len(fields), [fields.get(b"$c"), fields.get(user_field)]]

    def _load_locked(self, keys: list[str], argv: list[bytes]) -> Any:
        lock, token = keys[1], argv[1]
        held = self._string(lock)
        if held is None:
            self._set_string(lock, token, int(argv[2]))
        elif held != token:
            return LOCK_HELD
        reply = self._load(keys[0], argv[:1], refresh=True)
        if not isinstance(reply, list):
            self._delete(lock)
        return reply

    def _write(self, keys: list[str], argv: list[bytes]) -> Any:
        """`_scripts.WRITE` in Python (the same arguments and replies)."""
        header = argv[0].split()
        key, ttl, mode = keys[0], int(header[0]), header[1]
        ns, ni, nx = int(header[2]), int(header[3]), int(header[4])

        def key_at(index: bytes) -> str | None:
            return keys[int(index) - 1] if int(index) else None

        old, log, lock = key_at(header[5]), key_at(header[6]), key_at(header[7])
        release = lock is not None and header[8] == b"1"
        codec, nonce, token = header[9], header[10], header[11]
        sp = 1
        ip = sp + 2 * ns
        xp = ip + 2 * ni
        dp = xp + 2 * nx

        pick = 1

        def stored() -> Any:
            if ni + nx == 0:
                return pick
            fields = self._get(key) or {}
            return [pick, *(fields.get(argv[i]) for i in range(ip, dp, 2))]

        def finish(result: Any, *, logged: bool) -> Any:
            if logged and log is not None:
                seen = self._string(log) or b""
                self._set_string(log, seen[-119:] + nonce + b" ", 60000)
            if release:
                assert lock is not None
                self._delete(lock)
            return result

        if mode == b"c" and old is not None and log is None and self._get(old) is None:
            return finish(int(self._get(key) is not None), logged=False)
        if mode == b"c":
            # The first free candidate (KEYS[1], then the spares), or the one a first send of
            # this very write took (its nonce is in that candidate's log).
            spares = int(header[13])
            first = len(keys) - 2 * spares
            candidates = [(key, log)] + [
                (keys[first + 2 * i], keys[first + 2 * i + 1] if log else None)
                for i in range(spares)
            ]
            for index, (candidate, its_log) in enumerate(candidates, 1):
                if self._get(candidate) is None:
                    pick, key, log = index, candidate, its_log
                    break
                if its_log is not None and nonce in (self._string(its_log) or b""):
                    pick, key = index, candidate
                    return stored()
            else:
                return finish(ALL_TAKEN, logged=False)
        elif log is not None and nonce in (self._string(log) or b""):
            return stored()
        if lock is not None and self._string(lock) != token:
            return LOCK_HELD
        if mode == b"n":
            return finish(1, logged=True)
        if mode == b"d":
            self._delete(key)
            return finish(1, logged=True)
        if mode == b"t":
            found = self._get(key) is not None
            if found and ttl > 0:
                self._pexpire(key, ttl)
            return finish(int(found), logged=True)
        if old is not None:
            previous = self._get(old)
            if previous is None:
                return finish(int(self._get(key) is not None), logged=False)
            self._hashes[key] = dict(previous)
        elif mode == b"u" and self._get(key) is None:
            return finish(0, logged=False)
        current = self._get(key) or {}
        counts = []
        for i in range(ip, xp, 2):
            value = current.get(argv[i])
            number = 0 if value is None else _counter(value, codec)
            if number is None:
                return finish([NOT_AN_INTEGER, argv[i]], logged=False)
            counts.append(number + int(argv[i + 1]))
        if mode == b"r":
            self._delete(key)
        fields = self._hashes.setdefault(key, {})
        pairs = argv[sp:ip]
        fields.update(zip(pairs[::2], pairs[1::2]))
        for n, i in enumerate(range(ip, xp, 2)):
            fields[argv[i]] = _encode_counter(counts[n], codec)
        for i in range(xp, dp, 2):
            fields.setdefault(argv[i], argv[i + 1])
        for name in argv[dp:]:
            fields.pop(name, None)
        if ttl > 0:
            self._pexpire(key, ttl)
        if old is not None:
            self._delete(old)
        return finish(stored(), logged=True)

    def pipeline(self, transaction: bool = False) -> _MemoryPipeline:
        return _MemoryPipeline(self)

    def close(self) -> None:
        """Nothing to close."""


def _counter(value: bytes, codec: bytes) -> int | None:
    """The integer a stored field holds, as the write script reads it, or None."""
    if codec == b"m":
        import msgpack

        try:
            number = msgpack.unpackb(value)
        except Exception:  # msgpack raises several unrelated types for bad input
            return None
        return number if isinstance(number, int) and not isinstance(number, bool) else None
    text = value.decode("ascii", "replace")
    return int(text) if text.lstrip("-").isdigit() and text.count("-") <= 1 else None


def _encode_counter(number: int, codec: bytes) -> bytes:
    if codec == b"m":
        import msgpack

        packed: bytes = msgpack.packb(number)
        return packed
    return str(number).encode()


class _MemoryPipeline:
    def __init__(self, redis: _MemoryRedis) -> None:
        self._redis = redis
        self._calls: list[tuple[Any, ...]] = []

    def execute_command(self, *args: Any) -> None:
        self._calls.append(args)

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        return [self._redis.execute_command(*call) for call in self._calls]


class _AsyncMemoryRedis:
    """The asyncio face of `_MemoryRedis` (no real waiting: everything is in memory)."""

    def __init__(self) -> None:
        self.sync = _MemoryRedis()

    async def execute_command(self, *args: Any) -> Any:
        return self.sync.execute_command(*args)

    def pipeline(self, transaction: bool = False) -> _AsyncMemoryPipeline:
        return _AsyncMemoryPipeline(self.sync)

    async def aclose(self) -> None:
        """Nothing to close."""


class _AsyncMemoryPipeline(_MemoryPipeline):
    async def execute(self, raise_on_error: bool = True) -> list[Any]:  # type: ignore[override]
        return super().execute()


class MemoryStore(RedisStore):
    """The store contract in memory, for sync tests (same options as `RedisStore`)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(_MemoryRedis(), **options)  # type: ignore[arg-type]


class AsyncMemoryStore(AsyncRedisStore):
    """The store contract in memory, for asyncio tests (same options as `AsyncRedisStore`)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(_AsyncMemoryRedis(), **options)  # type: ignore[arg-type]
