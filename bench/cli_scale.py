"""How long ``redis-sessions ls``, ``stats`` and ``purge`` take on N sessions, and how much
memory the CLI process needs.

Usage: ``.venv/bin/python bench/cli_scale.py [N ...]`` (default: 100000 1000000).

Starts its own local server (no persistence), seeds N sessions the way the store writes them
(one hash per session: JSON fields, ``$c`` creation time, a TTL; through a pipeline of HSET +
PEXPIRE), then runs the installed console script as a subprocess, output to /dev/null:
``ls --json --limit 0``, ``stats``, ``purge --yes``. Prints a markdown table: seconds (wall)
and peak RSS of the CLI process (from ``resource.getrusage(RUSAGE_CHILDREN)`` in a fresh
helper process per command, so one command's peak never hides the next one's).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import random
import secrets
import subprocess
import sys
import time
from pathlib import Path

import redis

from redis_sessions.server import LocalServer

DEFAULT_SIZES = (100_000, 1_000_000)
USERS = 5_000
BATCH = 10_000

# Runs one command with stdout to /dev/null and reports its wall time and peak RSS. A fresh
# interpreter per command: RUSAGE_CHILDREN's maximum then belongs to that command alone.
_MEASURE = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                      stdin=subprocess.DEVNULL)
seconds = time.perf_counter() - started
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
print(json.dumps({"rc": done.returncode, "seconds": seconds, "peak_kib": peak_kib,
                  "stderr": done.stderr.decode(errors="replace")[-2000:]}))
"""


def console_script() -> list[str]:
    """The ``redis-sessions`` script of this virtualenv (``python -m`` as a fallback)."""
    script = Path(sys.executable).parent / "redis-sessions"
    return [str(script)] if script.exists() else [sys.executable, "-m", "redis_sessions.cli"]


def seed(client: redis.Redis, count: int) -> float:
    """Create `count` sessions (pipelined HSET + PEXPIRE) -> seconds taken."""
    started = time.perf_counter()
    now = int(time.time() * 1000)
    rng = random.Random(count)
    for first in range(0, count, BATCH):
        pipe = client.pipeline(transaction=False)
        for _ in range(min(BATCH, count - first)):
            key = f"sess:{{{secrets.token_urlsafe(32)}}}"
            user = json.dumps(f"user-{rng.randrange(USERS)}")
            created = now - rng.randrange(7 * 86400_000)
            pipe.hset(
                key, mapping={"user": user, "views": str(rng.randrange(100)), "$c": str(created)}
            )
            pipe.pexpire(key, rng.randrange(60_000, 86400_000))
        pipe.execute()
    return time.perf_counter() - started


def measure(args: list[str]) -> dict[str, float]:
    """Run the console script with `args` -> {"seconds", "peak_mib"}; fails loudly."""
    helper = subprocess.run(
        [sys.executable, "-c", _MEASURE, *console_script(), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(helper.stdout)
    if result["rc"] != 0:
        raise SystemExit(
            f"redis-sessions {' '.join(args)} failed ({result['rc']}):\n{result['stderr']}"
        )
    return {"seconds": result["seconds"], "peak_mib": result["peak_kib"] / 1024}


def machine() -> str:
    """CPU count and model, for the record."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model}), {platform.system()} {platform.release()}"


def main(argv: list[str]) -> int:
    """Seed, measure and print the table for each N in `argv`."""
    sizes = [int(arg.replace("_", "")) for arg in argv] or list(DEFAULT_SIZES)
    server = LocalServer(appendonly=False).start()
    try:
        client = redis.Redis.from_url(server.url)
        info = client.info("server")
        version = (
            f"valkey {info['valkey_version']}"
            if "valkey_version" in info
            else f"redis {info['redis_version']}"
        )
        rows = []
        for count in sizes:
            client.flushall()  # the bench's own private server
            seed_seconds = seed(client, count)
            assert client.dbsize() == count
            print(f"seeded {count:,} sessions in {seed_seconds:.1f} s", file=sys.stderr)
            url = ["--url", server.url]
            for label, args in (
                ("ls --json --limit 0", ["ls", "--json", "--limit", "0"]),
                ("stats", ["stats"]),
                ("purge --yes", ["purge", "--yes"]),
            ):
                figures = measure(url + args)
                print(
                    f"  {label}: {figures['seconds']:.1f} s, {figures['peak_mib']:.0f} MiB",
                    file=sys.stderr,
                )
                rows.append((count, label, figures))
            assert client.dbsize() == 0, "purge left sessions behind"
        client.close()
    finally:
        server.stop()
    today = datetime.date.today().isoformat()
    print(f"{today}; {machine()}; server {version}; Python {platform.python_version()}\n")
    print("| sessions | command | seconds | peak RSS of the CLI |")
    print("| ---: | --- | ---: | ---: |")
    for count, label, figures in rows:
        print(
            f"| {count:,} | `redis-sessions {label}` | {figures['seconds']:.1f} "
            f"| {figures['peak_mib']:.0f} MiB |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
