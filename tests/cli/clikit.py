"""Helpers of the CLI tests: run the command in-process or as the console script, and seed
many sessions fast (a server-side Lua loop)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from click.testing import CliRunner, Result

from redis_sessions import RedisStore
from redis_sessions.cli import cli

__all__ = ["Completed", "Seeded", "console_script", "invoke", "run_script", "seed_many"]


def invoke(
    url: str | None,
    *args: str,
    expect: int = 0,
    input: str | None = None,
    env: dict[str, str | None] | None = None,
) -> Result:
    """Run ``redis-sessions [--url URL] ARGS`` in-process; assert its exit status."""
    argv = (["--url", url] if url else []) + list(args)
    result = CliRunner().invoke(
        cli, argv, input=input, env=env, catch_exceptions=True, prog_name="redis-sessions"
    )
    if result.exit_code != expect:
        raise AssertionError(
            f"redis-sessions {' '.join(argv)}: exit {result.exit_code}, expected {expect}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\nexception: {result.exception!r}"
        )
    if expect == 0:
        assert result.exception is None, result.exception
    return result


def console_script() -> list[str]:
    """The installed ``redis-sessions`` script next to this interpreter (``-m`` otherwise)."""
    script = Path(sys.executable).parent / "redis-sessions"
    if script.exists():
        return [str(script)]
    found = shutil.which("redis-sessions")  # pragma: no cover - depends on the install
    return [found] if found else [sys.executable, "-m", "redis_sessions.cli"]


Completed = subprocess.CompletedProcess[bytes]


def run_script(
    args: Sequence[str],
    *,
    timeout: float = 60.0,
    cwd: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
) -> tuple[Completed, float]:
    """Run the console script to completion -> (the completed process, seconds it took)."""
    started = time.perf_counter()
    done = subprocess.run(
        [*console_script(), *args],
        capture_output=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    return done, time.perf_counter() - started


# Creates ARGV[2] sessions numbered from ARGV[1], the way the store writes them: one hash per
# session, JSON field values, "$c" = creation ms, a TTL. Ages spread over 100,000 s, TTLs over
# 1 h to 1 day (none expires during a test), users over ARGV[5] names.
_SEED = """
local first, n, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local users = tonumber(ARGV[5])
for i = first, first + n - 1 do
  local key = KEYS[1] .. '{' .. ARGV[4] .. string.format('%038d', i) .. '}'
  redis.call('HSET', key, 'user', '"user-' .. (i % users) .. '"', 'n', tostring(i),
             '$c', tostring(now - (i % 100000) * 1000))
  redis.call('PEXPIRE', key, 3600000 + (i * 7919) % 82800000)
end
return n
"""


def seed_many(
    client: redis.Redis,
    count: int,
    *,
    prefix: str = "sess:",
    tag: str = "seed-",
    users: int = 1000,
    chunk: int = 20_000,
) -> None:
    """Create `count` sessions server-side, `chunk` per script call (each call blocks the
    server for well under a second)."""
    now = int(time.time() * 1000)
    for first in range(0, count, chunk):
        client.eval(_SEED, 1, prefix, first, min(chunk, count - first), now, tag, users)


@dataclass
class Seeded:
    """The sessions created by the `seeded` fixture: handle -> data, and their users."""

    url: str
    client: redis.Redis
    store: RedisStore
    data: dict[str, dict[str, Any]] = field(default_factory=dict)

    def key(self, handle: str) -> str:
        """The Redis key of a handle."""
        return self.store.layout.key(handle)

    def handles_of(self, user: str) -> set[str]:
        """Handles whose expected user is `user`."""
        return {h for h, d in self.data.items() if _user_name(d.get("user")) == user}


def _user_name(value: Any) -> str | None:
    if isinstance(value, dict):
        return str(value["name"])
    return None if value is None else str(value)
