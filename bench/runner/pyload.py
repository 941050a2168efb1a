"""A small asyncio HTTP/1.1 load generator: the fallback when wrk is missing, and the client of
the lost-increments test.

Keep-alive connections written on raw streams (an HTTP library would cost more CPU than the apps
under test), one request in flight per connection, cookies sent round-robin.

As a script it runs for a duration and prints one ``BENCH {json}`` line, the same fields as the
wrk script's ``done()``::

    python pyload.py --port P --path /read --seconds 5 --connections 32 [--cookies FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HOST = "127.0.0.1"


class ProtocolError(Exception):
    """The server's answer is not an HTTP/1.1 response we can frame."""


def build_request(path: str, cookie: str | None, port: int) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}:{port}"]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Connection:
    """One keep-alive connection, reopened when the server closes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise ProtocolError(f"bad status line {lines[0]!r}")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunked()
        else:
            # No framing: the body runs to the end of the connection.
            body = await self.reader.read()
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return int(parts[1]), body

    async def _chunked(self) -> bytes:
        assert self.reader is not None
        chunks = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                # Trailers, if any, end with an empty line.
                while (await self.reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return b"".join(chunks)
            chunks.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)


def _percentile(sorted_values: Sequence[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


async def for_duration(
    port: int, path: str, cookies: Sequence[str], seconds: float, connections: int
) -> dict[str, float]:
    """Requests on `connections` connections for `seconds`: the wrk script's summary fields."""
    requests = [build_request(path, cookie, port) for cookie in cookies] or [
        build_request(path, None, port)
    ]
    turn = itertools.cycle(requests)
    latencies: list[float] = []
    counts = {"status": 0, "read": 0, "connect": 0}
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        conn = Connection(port)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                status, _ = await conn.request(next(turn))
            except (OSError, asyncio.IncompleteReadError, ProtocolError, ValueError):
                counts["read"] += 1
                await conn.close()
                continue
            latencies.append(time.perf_counter() - started)
            if status >= 400:
                counts["status"] += 1
        await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "duration_us": elapsed * 1e6,
        "connect": counts["connect"],
        "read": counts["read"],
        "write": 0,
        "status": counts["status"],
        "timeout": 0,
        "p50_us": _percentile(latencies, 50) * 1e6,
        "p99_us": _percentile(latencies, 99) * 1e6,
        "mean_us": statistics.fmean(latencies) * 1e6 if latencies else 0.0,
    }


async def exactly(
    port: int, path: str, cookie: str | None, total: int, connections: int
) -> list[tuple[int, bytes]]:
    """`total` requests spread over `connections` concurrent connections; (status, body) each,
    status 0 for a transport error."""
    raw = build_request(path, cookie, port)
    issued = itertools.count()
    answers: list[tuple[int, bytes]] = []

    async def worker() -> None:
        conn = Connection(port)
        while next(issued) < total:
            try:
                answers.append(await conn.request(raw))
            except (OSError, asyncio.IncompleteReadError, ProtocolError, ValueError):
                answers.append((0, b""))
                await conn.close()
        await conn.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return answers


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--cookies", type=Path, help="a file with one 'name=value' a line")
    args = parser.parse_args(argv)
    lines = args.cookies.read_text().splitlines() if args.cookies else []
    cookies = [line for line in lines if line]
    summary = asyncio.run(
        for_duration(args.port, args.path, cookies, args.seconds, args.connections)
    )
    sys.stdout.write("BENCH " + json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
