"""The store API at scale: memory per session and the time of ``length()``, ``ids()`` and
``clear()`` on N sessions, and the CLI's ``stats`` and ``purge`` on the same data.

Usage: ``.venv/bin/python bench/store_scale.py [N]`` (default 1000000).

Starts its own local server (no persistence), seeds N sessions the way the store writes them
(`cli_scale.seed`: one hash per session with a user, a counter and the creation time, a TTL),
then measures: Redis memory per session (``used_memory`` delta / N), ``RedisStore.length()``,
a full iteration of ``RedisStore.ids()``, ``redis-sessions stats`` (a subprocess), and
``RedisStore.clear()``; the sessions are seeded again before ``redis-sessions purge --yes``.
Prints a markdown table (`rows` returns it for bench/run.py).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import redis
from cli_scale import measure, seed

from redis_sessions import RedisStore, connect
from redis_sessions.server import LocalServer

DEFAULT_SIZE = 1_000_000


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def rows(count: int = DEFAULT_SIZE) -> list[tuple[str, str]]:
    """Seed `count` sessions on a private server and measure -> [(what, figure)]."""
    server = LocalServer(appendonly=False).start()
    out: list[tuple[str, str]] = []
    try:
        client = redis.Redis.from_url(server.url)
        base = int(client.info("memory")["used_memory"])
        seed(client, count)
        used = int(client.info("memory")["used_memory"]) - base
        out.append(
            (
                "Redis memory",
                f"{used / 2**20:,.0f} MiB, {used / count:.0f} bytes "
                "per session (user, counter, creation time, TTL)",
            )
        )
        store = RedisStore(connect(server.url))
        seconds, length = timed(store.length)
        assert length == count, (length, count)
        out.append(("`store.length()`", f"{seconds:.1f} s"))
        seconds, seen = timed(lambda: sum(1 for _ in store.ids()))
        assert seen == count
        out.append(("`for handle in store.ids()`", f"{seconds:.1f} s"))
        stats = measure(["--url", server.url, "stats"])
        out.append(
            ("`redis-sessions stats`", f"{stats['seconds']:.1f} s, {stats['peak_mib']:.0f} MiB RSS")
        )
        seconds, deleted = timed(store.clear)
        # The seeded TTLs start at one minute: a few sessions may have expired by now.
        assert deleted <= count and client.dbsize() == 0
        out.append(("`store.clear()`", f"{seconds:.1f} s ({deleted:,} deleted)"))
        seed(client, count)
        purge = measure(["--url", server.url, "purge", "--yes"])
        assert client.dbsize() == 0
        out.append(
            (
                "`redis-sessions purge --yes`",
                f"{purge['seconds']:.1f} s, {purge['peak_mib']:.0f} MiB RSS",
            )
        )
        store.close()
        client.close()
    finally:
        server.stop()
    return out


def main(argv: list[str]) -> int:
    count = int(argv[0].replace("_", "")) if argv else DEFAULT_SIZE
    print(f"| {count:,} sessions | |\n| --- | --- |")
    for what, figure in rows(count):
        print(f"| {what} | {figure} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
