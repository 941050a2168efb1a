"""What one request costs in Redis, measured on a quiet app with sequential requests: commands,
scripts and round trips (INFO deltas, MONITOR for what runs inside scripts), bytes stored per
session (MEMORY USAGE of the keys a first visit creates); sessions for the load runs; the
lost-increments test."""

from __future__ import annotations

import asyncio
import re
import statistics
import threading
from collections import Counter
from typing import Any

import httpx
import redis

from . import pyload

# Commands that run a script: one round trip each, their inner commands counted apart.
SCRIPT_COMMANDS = frozenset({"eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"})
_NUMBER = re.compile(rb"-?\d+")


class ProbeError(Exception):
    """The app did not behave as the bench expects (no cookie, a lost session, an error)."""


def session_cookie(response: httpx.Response, name: str) -> str | None:
    """``name=value`` exactly as the app set it (sent back verbatim, signed or encoded)."""
    for header in response.headers.get_list("set-cookie"):
        pair = header.split(";", 1)[0].strip()
        if pair.split("=", 1)[0].strip() == name:
            return pair
    return None


def counter(body: bytes) -> int | None:
    match = _NUMBER.search(body)
    return int(match.group()) if match else None


def _get(client: httpx.Client, path: str, cookie: str | None) -> httpx.Response:
    # The jar stays empty: every request carries exactly the cookie we choose.
    client.cookies.clear()
    response = client.get(path, headers={"Cookie": cookie} if cookie else {})
    if response.status_code >= 400:
        raise ProbeError(f"GET {path} answered {response.status_code}")
    return response


def create_sessions(base: str, cookie_name: str, count: int) -> list[str]:
    """`count` new sessions (a first visit each: counter 1), checked by reading one back."""
    cookies = []
    with httpx.Client(base_url=base, timeout=10.0) as client:
        for _ in range(count):
            cookie = session_cookie(_get(client, "/incr", None), cookie_name)
            if cookie is None:
                raise ProbeError(f"GET /incr set no {cookie_name!r} cookie")
            cookies.append(cookie)
        seen = counter(_get(client, "/read", cookies[0]).content)
        if seen != 1:
            raise ProbeError(f"the session was not kept: /read answered {seen} instead of 1")
    return cookies


class _Snapshot:
    """The counters a request moves: calls per command, and the server's read events (one per
    round trip: a pipeline or a script arrives in one read)."""

    def __init__(self, client: redis.Redis) -> None:
        stats = client.info("commandstats")
        self.calls = Counter(
            {key.removeprefix("cmdstat_"): int(value["calls"]) for key, value in stats.items()}
        )
        self.reads = int(client.info("stats")["total_reads_processed"])

    def minus(self, before: _Snapshot) -> tuple[Counter[str], int]:
        calls = Counter(self.calls)
        calls.subtract(before.calls)
        return calls, self.reads - before.reads


class _Monitor(threading.Thread):
    """MONITOR on its own connection until a sentinel ECHO shows up: which commands scripts run.

    Scripts' inner commands are the lines whose client is ``lua``.
    """

    SENTINEL = "bench-probe-end"

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url, socket_timeout=15)
        self.in_scripts: Counter[str] = Counter()
        self.ready = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.client.monitor() as monitor:
                self.ready.set()
                while True:
                    line = monitor.next_command()
                    words = str(line["command"]).split()
                    if words[:2] == ["ECHO", self.SENTINEL]:
                        return
                    if line.get("client_type") == "lua" and words:
                        self.in_scripts[words[0].lower()] += 1
        except BaseException as exc:  # reported by finish(), in the calling thread
            self.error = exc
            self.ready.set()
        finally:
            self.client.close()

    def finish(self, client: redis.Redis) -> Counter[str]:
        client.echo(self.SENTINEL)
        self.join(timeout=20)
        if self.is_alive() or self.error is not None:
            raise ProbeError(f"MONITOR did not finish: {self.error!r}")
        return self.in_scripts


def probe_commands(
    base: str, redis_url: str, path: str, cookie: str | None, requests: int = 100
) -> dict[str, Any]:
    """Per-request Redis figures of ``GET path`` over one keep-alive connection.

    Returns round_trips (read events), commands (sent by the app; a script is one), scripts,
    in_scripts (commands run inside scripts), and the per-request mix of each kind.
    """
    client = redis.Redis.from_url(redis_url)
    try:
        with httpx.Client(base_url=base, timeout=10.0) as http:
            for _ in range(5):  # connections and script caches warm, as under load
                _get(http, path, cookie)
            # What our own INFO calls add, subtracted below.
            first = _Snapshot(client)
            own_calls, own_reads = _Snapshot(client).minus(first)
            monitor = _Monitor(redis_url)
            monitor.start()
            if not monitor.ready.wait(10):
                raise ProbeError("MONITOR did not start")
            before = _Snapshot(client)
            for _ in range(requests):
                _get(http, path, cookie)
            calls, reads = _Snapshot(client).minus(before)
            in_scripts = monitor.finish(client)
    finally:
        client.close()
    calls.subtract(own_calls)
    calls.subtract({"monitor": calls["monitor"]})
    total = Counter({name: count for name, count in calls.items() if count > 0})
    # commandstats counts inner commands too: what the app sent is the total minus those.
    sent = Counter(total)
    sent.subtract(in_scripts)
    sent = Counter({name: count for name, count in sent.items() if count > 0})
    return {
        "requests": requests,
        "round_trips": max(0, reads - own_reads) / requests,
        "commands": sum(sent.values()) / requests,
        "scripts": sum(sent[name] for name in SCRIPT_COMMANDS) / requests,
        "in_scripts": sum(in_scripts.values()) / requests,
        "sent_mix": {name: count / requests for name, count in sorted(sent.items())},
        "script_mix": {name: count / requests for name, count in sorted(in_scripts.items())},
    }


def probe_memory(base: str, redis_url: str, visits: int = 20) -> dict[str, float]:
    """Bytes (MEMORY USAGE) and keys of what one first visit stores, median of `visits`."""
    client = redis.Redis.from_url(redis_url)
    sizes, counts = [], []
    try:
        with httpx.Client(base_url=base, timeout=10.0) as http:
            for _ in range(visits):
                before = set(client.scan_iter(count=1000))
                _get(http, "/incr", None)
                created = set(client.scan_iter(count=1000)) - before
                sizes.append(sum(client.memory_usage(key, samples=0) or 0 for key in created))
                counts.append(len(created))
    finally:
        client.close()
    return {"bytes": statistics.median(sizes), "keys": statistics.median(counts)}


def lost_increments(
    port: int, cookie_name: str, path: str, total: int, connections: int
) -> dict[str, int]:
    """`total` concurrent GETs of `path` on one new session: how many increments were lost.

    lost = requests answered 2xx - (final counter - 1), the session starting at 1.
    """
    base = f"http://127.0.0.1:{port}"
    cookie = create_sessions(base, cookie_name, 1)[0]
    answers = asyncio.run(pyload.exactly(port, path, cookie, total, connections))
    ok = sum(1 for status, _ in answers if 200 <= status < 300)
    with httpx.Client(base_url=base, timeout=10.0) as http:
        final = counter(_get(http, "/read", cookie).content)
    if final is None:
        raise ProbeError("/read answered no number")
    return {
        "requests": total,
        "ok": ok,
        "failed": total - ok,
        "final": final,
        "lost": ok - (final - 1),
    }
