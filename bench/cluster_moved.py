"""What redis-py's MOVED handling costs an asyncio Cluster store during a reshard: writes
served while ``valkey-cli --cluster reshard`` moves slots, with the client `connect_async`
builds (``reinitialize_steps=0``: a MOVED patches that slot) against redis-py's default (every
5th MOVED closes every connection of the client and re-reads the whole slot map).

Usage: ``.venv/bin/python bench/cluster_moved.py [--slots N] [--tasks N] [--rounds N]``

Each round starts a fresh Cluster (3 primaries, 3 replicas: tests/clusterkit.py), writes 2,000
sessions, then keeps `--tasks` tasks saving sessions through one store while `--slots` slots
move from one primary to another, and counts the saves served and the ones that failed. All
rounds of one setting run, then those of the other. Prints a markdown table (the figure quoted
in `_connect.connect_async`).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from redis_sessions import AsyncRedisStore, StoreUnavailableError, connect_async  # noqa: E402
from redis_sessions._ids import handle_for, new_id  # noqa: E402
from tests.support.clusterkit import HOST, LocalCluster, cli_binary  # noqa: E402 - the tests' topology kit

SESSIONS = 2000


async def reshard_under_load(
    cluster: LocalCluster, slots: int, tasks: int, client_kwargs: dict[str, Any]
) -> tuple[int, dict[str, int], float]:
    """(saves served, failures by reason, seconds the reshard took)."""
    store = AsyncRedisStore(connect_async(cluster.url, **client_kwargs))
    handles = [handle_for(new_id()) for _ in range(SESSIONS)]
    try:
        for start in range(0, SESSIONS, 100):
            await asyncio.gather(*(store.set(h, {"n": 0}) for h in handles[start : start + 100]))
        source = cluster.primary_of_slot(0)
        destination = next(n for n in cluster.primaries() if n is not source)
        reshard = await asyncio.create_subprocess_exec(
            cli_binary(),
            "--cluster",
            "reshard",
            f"{HOST}:{source.port}",
            "--cluster-from",
            cluster.node_id(source),
            "--cluster-to",
            cluster.node_id(destination),
            "--cluster-slots",
            str(slots),
            "--cluster-yes",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        served = 0
        failed: collections.Counter[str] = collections.Counter()
        done = False

        async def writer(first: int) -> None:
            nonlocal served
            i = first
            while not done:
                try:
                    await store.set(handles[i % SESSIONS], {"n": i})
                    served += 1
                except StoreUnavailableError as exc:
                    failed[exc.reason] += 1
                i += tasks

        started = time.monotonic()
        writers = [asyncio.create_task(writer(i)) for i in range(tasks)]
        if await reshard.wait() != 0:
            raise RuntimeError("valkey-cli reshard failed")
        seconds = time.monotonic() - started
        done = True
        await asyncio.gather(*writers)
        return served, dict(failed), seconds
    finally:
        await store.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, default=600)
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    settings = {
        "connect_async (reinitialize_steps=0)": {},
        "redis-py default (reinitialize_steps=5)": {"reinitialize_steps": 5},
    }
    print(
        f"{args.slots} slots resharded under {args.tasks} writing tasks, "
        f"{args.rounds} rounds each\n"
    )
    print("| client | saves served during the reshard | saves/s | failed | reshard s |")
    print("| --- | --- | --- | --- | --- |")
    for name, kwargs in settings.items():
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as folder:
                cluster = LocalCluster(Path(folder)).start()
                try:
                    served, failed, seconds = asyncio.run(
                        reshard_under_load(cluster, args.slots, args.tasks, kwargs)
                    )
                finally:
                    cluster.stop()
            print(f"| {name} | {served} | {served / seconds:.0f} | {failed or 0} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
