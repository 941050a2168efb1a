"""Would another asyncio Redis client move the limit? App-side CPU per command of redis-py,
coredis and valkey-glide, for a GET and for an EVALSHA shaped like our read.

Usage: ``.venv/bin/python bench/clients.py [N]`` (default 20000 commands per case).

Installs coredis and valkey-glide into the running environment when missing (pip), starts
its own server on 127.0.0.1, and prints a markdown table of CPU time (the whole process,
threads included: valkey-glide does its I/O on threads of its own) and wall time per command,
each command awaited before the next one (no pipelining).
"""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis_sessions.server import LocalServer

READ = "#!lua flags=no-writes\nreturn {redis.call('PTTL', KEYS[1]), redis.call('HGETALL', KEYS[1])}"


def ensure(*packages: tuple[str, str]) -> None:
    missing = [pip for module, pip in packages if importlib.util.find_spec(module) is None]
    if missing:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *missing], check=True)


async def timed(n: int, call: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    for _ in range(500):
        await call()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        await call()
    return ((time.process_time() - cpu) / n * 1e6, (time.perf_counter() - wall) / n * 1e6)


async def measure(port: int, n: int) -> list[tuple[str, str, tuple[float, float]]]:
    import coredis
    import redis.asyncio
    from glide import GlideClient, GlideClientConfiguration, NodeAddress

    rows = []
    r = redis.asyncio.Redis(port=port)
    await r.hset("sess:{x}", mapping={"n": "1", "$c": "1"})
    await r.set("k", "v")
    sha = await r.script_load(READ)
    rows.append(
        (
            "redis-py " + redis.__version__,
            "GET",
            await timed(n, lambda: r.execute_command("GET", "k")),
        )
    )
    rows.append(
        (
            "redis-py " + redis.__version__,
            "EVALSHA (our read)",
            await timed(n, lambda: r.execute_command("EVALSHA", sha, 1, "sess:{x}", "1")),
        )
    )
    await r.aclose()

    c = coredis.Redis(port=port)
    async with c:
        rows.append(("coredis " + coredis.__version__, "GET", await timed(n, lambda: c.get("k"))))
        rows.append(
            (
                "coredis " + coredis.__version__,
                "EVALSHA (our read)",
                await timed(n, lambda: c.evalsha(sha, ["sess:{x}"], ["1"])),
            )
        )

    g = await GlideClient.create(GlideClientConfiguration([NodeAddress("127.0.0.1", port)]))
    from importlib.metadata import version

    name = "valkey-glide " + version("valkey-glide")
    rows.append((name, "GET", await timed(n, lambda: g.get("k"))))
    rows.append(
        (
            name,
            "EVALSHA (our read)",
            await timed(n, lambda: g.custom_command(["EVALSHA", sha, "1", "sess:{x}", "1"])),
        )
    )
    await g.close()
    return rows


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 20000
    ensure(("coredis", "coredis"), ("glide", "valkey-glide"))
    server = LocalServer(appendonly=False).start()
    try:
        rows = asyncio.run(measure(server.port, n))
    finally:
        server.stop()
    print("| client | command | CPU µs / command | wall µs / command |")
    print("| --- | --- | ---: | ---: |")
    for client, command, (cpu, wall) in rows:
        print(f"| {client} | {command} | {cpu:.0f} | {wall:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
