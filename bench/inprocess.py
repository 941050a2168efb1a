"""App CPU per request and per Redis command, in process (no HTTP server, no load generator):
the numbers behind docs/performance.md.

Usage: ``.venv/bin/python bench/inprocess.py [N]`` (default 3000 requests / 20000 commands).

Starts its own server on 127.0.0.1 and prints three markdown tables:

1. ours (bench/peers/ours_asgi.py) against the hand-written app (bench/peers/handwritten.py),
   called as ASGI apps directly: CPU µs per read, modify and untouched request;
2. one ``GET`` through redis.asyncio with redis-py's `ConnectionPool`, its
   `BlockingConnectionPool`, and the pool `redis_sessions.connect_async` builds;
3. redis-py's cost of packing a command by argument count (why scripts take one header
   argument).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio

from redis_sessions import connect_async
from redis_sessions.server import LocalServer

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))


async def call(app: Any, path: str, cookie: str | None = None) -> list[dict[str, Any]]:
    """One GET through an ASGI app; the messages it sent."""
    headers = [(b"host", b"bench")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def cookie_of(sent: list[dict[str, Any]], name: str) -> str:
    for key, value in sent[0]["headers"]:
        if key == b"set-cookie" and value.startswith(name.encode() + b"="):
            return str(value.split(b";")[0].decode())
    raise AssertionError(f"no {name} cookie set")


async def cpu_us(n: int, work: Callable[[], Awaitable[Any]]) -> float:
    for _ in range(min(n, 300)):
        await work()
    started = time.process_time()
    for _ in range(n):
        await work()
    return (time.process_time() - started) / n * 1e6


async def requests(n: int) -> list[str]:
    import handwritten
    import ours_asgi

    rows = []
    for name, app, cookie_name in (
        ("redis-sessions (ASGI, lazy)", ours_asgi.app, "session"),
        ("hand-written", handwritten.app, "sid"),
    ):
        cookie = cookie_of(await call(app, "/incr"), cookie_name)
        figures = [
            await cpu_us(n, lambda a=app, p=path, c=cookie: call(a, p, c))
            for path in ("/read", "/incr", "/untouched")
        ]
        rows.append(f"| {name} | " + " | ".join(f"{f:.0f}" for f in figures) + " |")
    return rows


async def pools(url: str, n: int) -> list[str]:
    clients = {
        "redis-py ConnectionPool": redis.asyncio.Redis.from_url(url),
        "redis-py BlockingConnectionPool": redis.asyncio.Redis.from_pool(
            redis.asyncio.BlockingConnectionPool.from_url(url)
        ),
        "redis_sessions.connect_async": connect_async(url),
    }
    rows = []
    for name, client in clients.items():
        await client.set("bench:k", "v")
        rows.append(f"| {name} | {await cpu_us(n, lambda c=client: c.get('bench:k')):.0f} |")
        await client.aclose()
    return rows


def packing(n: int) -> list[str]:
    connection = redis.asyncio.Connection()
    rows = []
    for count in (2, 5, 9, 13):
        args = ["EVALSHA", "a" * 40, *(["1795480736192"] * (count - 2))]
        started = time.process_time()
        for _ in range(n):
            connection.pack_command(*args)
        rows.append(f"| {count} | {(time.process_time() - started) / n * 1e6:.1f} |")
    return rows


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 3000
    server = LocalServer(appendonly=False).start()
    os.environ["REDIS_URL"] = server.url  # the bench apps read it at import
    try:
        print("| app | read µs | modify µs | untouched µs |\n| --- | ---: | ---: | ---: |")
        print("\n".join(asyncio.run(requests(n))))
        print("\n| client pool | CPU µs per GET |\n| --- | ---: |")
        print("\n".join(asyncio.run(pools(server.url, n * 7))))
        print("\n| arguments | µs to pack |\n| ---: | ---: |")
        print("\n".join(packing(n * 7)))
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
