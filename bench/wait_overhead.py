"""What the durability options cost: latency of a session save with and without ``WAIT`` /
``WAITAOF``, measured in-process against real servers on this machine.

Usage: ``.venv/bin/python bench/wait_overhead.py [--saves N]``

Starts a Sentinel group (1 master, 2 replicas, 3 Sentinels: tests/sentinelkit.py, AOF
``everysec``) and a standalone server with AOF ``always``, then times N sequential saves
(``RedisStore.set`` of a small session, one round trip each) through a sync store:

- on the Sentinel master: no option, ``wait_replicas=1``, ``wait_replicas=2``;
- on the ``always`` server: no option, ``wait_aof=True`` (the fsync happens before the reply
  anyway, so WAITAOF returns at once).

Prints a markdown table of p50 / p99 in milliseconds (the figures quoted in
docs/deployment.md). On one machine replication takes microseconds: over a network each
``WAIT`` adds at least the round trip from the master to the slowest replica asked for.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from redis_sessions import RedisStore, connect  # noqa: E402
from redis_sessions.server import LocalServer  # noqa: E402
from tests.support.sentinelkit import SentinelGroup  # noqa: E402 - the tests' topology kit


def timed_saves(url: str, saves: int, **options: Any) -> tuple[float, float]:
    """(p50, p99) in ms of `saves` sequential `set` calls through a new store on `url`."""
    store = RedisStore(connect(url), **options)
    try:
        for i in range(50):  # warm-up: connections, scripts loaded
            store.set(f"warm{i}", {"n": i})
        samples = []
        for i in range(saves):
            started = time.perf_counter()
            store.set(f"h{i % 100}", {"n": i, "user": "alice"})
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        store.close()
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def main() -> None:
    """Run the measurements and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--saves", type=int, default=2000, help="saves per row (default 2000)")
    args = parser.parse_args()
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        with SentinelGroup(Path(tmp) / "sentinel") as group:
            url = group.url()
            rows.append(("Sentinel master, no option", *timed_saves(url, args.saves)))
            for n in (1, 2):
                rows.append(
                    (
                        f"Sentinel master, wait_replicas={n}",
                        *timed_saves(url, args.saves, wait_replicas=n, wait_timeout=1.0),
                    )
                )
        with LocalServer(data_dir=Path(tmp) / "always", appendfsync="always") as server:
            rows.append(("standalone, AOF always, no option", *timed_saves(server.url, args.saves)))
            rows.append(
                (
                    "standalone, AOF always, wait_aof=True",
                    *timed_saves(server.url, args.saves, wait_aof=True),
                )
            )
    print(
        f"{datetime.date.today()}, {platform.python_version()}, {args.saves} saves per row, "
        "one machine"
    )
    print("\n| setup | save p50 ms | save p99 ms |\n| --- | --: | --: |")
    for name, p50, p99 in rows:
        print(f"| {name} | {p50:.3f} | {p99:.3f} |")


if __name__ == "__main__":
    main()
