"""What the per-session lock costs: latency and Redis round trips per request, with and
without ``lock=``, on one session, and what it buys under contention.

Usage: ``.venv/bin/python bench/lock_overhead.py [--requests N] [--seconds S]``

Starts its own local server (no persistence) and the app below under uvicorn in a separate
process (pinned to CPU 0 when the machine has more than one, the client to the others), then:

1. sequential requests on one keep-alive connection: ``GET /read`` (reads a counter) and
   ``GET /incr`` (``session["n"] += 1``), each without and with the lock: p50 / p99 latency,
   scripts (= round trips: the app sends nothing else here) and Redis commands (those run
   inside the scripts included) per request, from ``INFO commandstats``;
2. contention: 16 connections hammering ``/incr`` on one session for S seconds, without and
   with the lock: requests/s, p99, and the increments lost (requests answered 200 minus the
   counter's final value).

Prints a markdown table (the figures quoted in docs/reliability.md).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import redis

from redis_sessions.server import LocalServer, free_port

SECRET = "bench-secret-0123456789abcdef0123"


def app() -> Any:
    """The app under test (uvicorn factory): ``/read``, ``/incr``; the lock when LOCK=1."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from redis_sessions import AsyncRedisStore
    from redis_sessions.asgi import SessionMiddleware

    async def read(request: Request) -> JSONResponse:
        return JSONResponse({"n": request.session.get("n", 0)})

    async def incr(request: Request) -> JSONResponse:
        request.session["n"] = request.session.get("n", 0) + 1
        return JSONResponse({"n": request.session["n"]})

    async def start(request: Request) -> JSONResponse:
        request.session["n"] = 0
        return JSONResponse({"n": 0})

    routes = [Route("/read", read), Route("/incr", incr), Route("/start", start)]
    lock = os.environ.get("LOCK") == "1"
    return SessionMiddleware(
        Starlette(routes=routes),
        AsyncRedisStore(url=os.environ["REDIS_URL"]),
        secret=SECRET,
        lock=["/read", "/incr"] if lock else False,
        lock_timeout=10,
    )


def commands(client: redis.Redis) -> tuple[int, int]:
    """(commands, scripts) run so far: every command (those inside scripts included) and the
    EVALSHA/EVAL calls alone; the app sends nothing but scripts, plus a PEXPIRE when due."""
    stats = client.info("commandstats")
    total = sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")
    scripts = sum(
        int(stats.get(k, {}).get("calls", 0)) for k in ("cmdstat_evalsha", "cmdstat_eval")
    )
    return total, scripts


class App:
    """The app in its own uvicorn process."""

    def __init__(self, redis_url: str, lock: bool) -> None:
        self.port = free_port()
        env = {**os.environ, "REDIS_URL": redis_url, "LOCK": "1" if lock else "0"}
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "lock_overhead:app",
            "--app-dir",
            str(Path(__file__).parent),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        if (os.cpu_count() or 1) > 1:
            cmd = ["taskset", "-c", "0", *cmd]
        self.process = subprocess.Popen(cmd, env=env)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(self.base + "/read", timeout=1)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the app did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


async def sequential(base: str, path: str, n: int, cookie: str) -> list[float]:
    async with httpx.AsyncClient(base_url=base, headers={"cookie": f"session={cookie}"}) as http:
        for _ in range(50):
            await http.get(path)  # warm-up
        times = []
        for _ in range(n):
            started = time.perf_counter()
            response = await http.get(path)
            times.append(time.perf_counter() - started)
            assert response.status_code == 200, response.status_code
        return times


async def contended(base: str, seconds: float, cookie: str) -> tuple[int, list[float], int]:
    """16 connections on /incr for `seconds`: (200s, latencies, non-200s)."""
    limits = httpx.Limits(max_connections=16)
    ok, failed, times = 0, 0, []
    async with httpx.AsyncClient(
        base_url=base, limits=limits, timeout=30, headers={"cookie": f"session={cookie}"}
    ) as http:
        stop = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal ok, failed
            while time.monotonic() < stop:
                started = time.perf_counter()
                response = await http.get("/incr")
                times.append(time.perf_counter() - started)
                if response.status_code == 200:
                    ok += 1
                else:
                    failed += 1

        await asyncio.gather(*(worker() for _ in range(16)))
    return ok, times, failed


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, set(range(1, os.cpu_count() or 2)))
    server = LocalServer(appendonly=False)
    server.start()
    rows = []
    try:
        admin = redis.Redis.from_url(server.url)
        for lock in (False, True):
            app_process = App(server.url, lock)
            try:
                cookie = httpx.get(app_process.base + "/start").cookies["session"]
                for path in ("/read", "/incr"):
                    before = commands(admin)
                    times = asyncio.run(sequential(app_process.base, path, args.requests, cookie))
                    after = commands(admin)
                    per_request = tuple(
                        (a - b) / (args.requests + 50) for a, b in zip(after, before)
                    )
                    rows.append(
                        (
                            f"`{path}` sequential",
                            lock,
                            len(times) / sum(times),
                            pct(times, 50),
                            pct(times, 99),
                            per_request,
                            "",
                        )
                    )
                httpx.get(app_process.base + "/start", headers={"cookie": f"session={cookie}"})
                ok, times, failed = asyncio.run(contended(app_process.base, args.seconds, cookie))
                final = httpx.get(
                    app_process.base + "/read", headers={"cookie": f"session={cookie}"}
                ).json()["n"]
                rows.append(
                    (
                        "`/incr` 16 connections",
                        lock,
                        ok / args.seconds,
                        pct(times, 50),
                        pct(times, 99),
                        None,
                        f"{ok - final} of {ok} increments lost, {failed} non-200",
                    )
                )
            finally:
                app_process.stop()
        admin.close()
    finally:
        server.stop()
    print(
        f"lock overhead, {datetime.date.today()}, {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, app pinned to CPU 0, {args.requests} sequential requests, "
        f"{args.seconds:g} s contended\n"
    )
    print(
        "| case | lock | req/s | p50 ms | p99 ms | scripts (round trips) / request | "
        "Redis commands / request | notes |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for case, lock, rate, p50, p99, per_request, notes in rows:
        shown = "|" if per_request is None else f"{per_request[1]:.2f} | {per_request[0]:.2f}"
        print(
            f"| {case} | {'on' if lock else 'off'} | {rate:,.0f} | {p50:.2f} | {p99:.2f} | "
            f"{shown} | {notes} |"
        )


if __name__ == "__main__":
    main()
