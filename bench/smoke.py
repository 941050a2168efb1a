"""Check that every app of the registry serves the bench routes as the contract says.

Starts a private Redis, then each app in turn with one worker, and checks: a first ``GET /incr``
without a cookie sets the app's cookie and answers 1; with that cookie ``/incr`` answers 2,
``/read`` 2, ``/untouched`` sets no cookie, ``/atomic`` (when offered) 3. Each line also shows
the Redis commands each step sent (from ``MONITOR``). Exits 1 when an app failed.

Usage: ``python bench/smoke.py [APP ...]`` (default: every app).
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import redis

from redis_sessions.server import LocalServer, free_port

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "peers"))
from registry import APPS, App  # noqa: E402

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
REQUEST_TIMEOUT = 10.0
# Commands of our own probe and of connection set-up, not of the session handling.
IGNORED = ("echo", "client", "hello", "ping", "select", "auth", "command")


class Failed(Exception):
    pass


def wait_for_port(proc: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Failed(f"exited with code {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise Failed(f"not listening on port {port} after {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group we created, then SIGKILL it after a timeout."""
    if proc.poll() is not None:
        return
    # start_new_session=True made the app a group leader: its workers share the group id.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=STOP_TIMEOUT)
            return
        except subprocess.TimeoutExpired:
            continue


class Monitor:
    """Redis's MONITOR feed: the commands the apps send, told apart from those their scripts run.

    `drain` sends a marker through the probe connection and reads the feed up to it, so each
    request gets exactly its own commands. Script-internal calls are counted by INFO
    commandstats too, which would inflate the round trips; MONITOR marks them ``lua``.
    """

    def __init__(self, server: LocalServer, probe: redis.Redis) -> None:
        self.probe = probe
        self.sock = socket.create_connection((server.host, server.port), timeout=REQUEST_TIMEOUT)
        self.feed = self.sock.makefile("rb")
        self.sock.sendall(b"MONITOR\r\n")
        if not self.feed.readline().startswith(b"+OK"):
            raise RuntimeError("MONITOR refused")
        self.marks = 0

    def drain(self) -> str:
        self.marks += 1
        marker = f"bench-smoke-mark-{self.marks}"
        self.probe.echo(marker)
        sent: list[str] = []
        scripted: list[str] = []
        while True:
            line = self.feed.readline().decode("utf-8", "replace")
            if not line:
                raise RuntimeError("MONITOR feed closed")
            if marker in line:
                return self.summary(sent, scripted)
            # +<time> [<db> <client address or "lua">] "CMD" "arg" ...
            source, _, rest = line.partition("] ")
            command = rest.split('"')[1].upper() if rest.count('"') >= 2 else "?"
            if command.lower() not in IGNORED:
                (scripted if source.endswith(" lua") else sent).append(command)

    @staticmethod
    def summary(sent: list[str], scripted: list[str]) -> str:
        def join(commands: list[str]) -> str:
            counts = Counter(commands)
            return "+".join(f"{n}x{c}" if n > 1 else c for c, n in sorted(counts.items()))

        text = join(sent) or "-"
        return f"{text} (scripts: {join(scripted)})" if scripted else text

    def close(self) -> None:
        self.feed.close()
        self.sock.close()


class Client:
    """One browser: a cookie jar of one cookie, and the Redis commands each request cost."""

    def __init__(self, port: int, cookie_name: str, monitor: Monitor) -> None:
        self.port = port
        self.cookie_name = cookie_name
        self.cookie: str | None = None
        self.monitor = monitor

    def get(self, path: str) -> tuple[str, list[str], str]:
        """GET `path`: the body, the cookie names it set, and the Redis commands it cost."""
        self.monitor.drain()  # whatever came before this request
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
        try:
            headers = {"Cookie": f"{self.cookie_name}={self.cookie}"} if self.cookie else {}
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read().decode("utf-8", "replace").strip()
            set_cookies = response.headers.get_all("Set-Cookie") or []
        finally:
            conn.close()
        if response.status != 200:
            raise Failed(f"GET {path}: HTTP {response.status} {body[:80]!r}")
        names = []
        for header in set_cookies:
            name, _, value = header.split(";", 1)[0].partition("=")
            names.append(name.strip())
            if name.strip() == self.cookie_name and value.strip() not in ("", "''", '""'):
                self.cookie = value.strip()
        # A peer may send its last command (express-session's EXPIRE) as the body leaves.
        time.sleep(0.05)
        return body, names, self.monitor.drain()


def expect(what: str, got: str, want: str) -> None:
    if got != want:
        raise Failed(f"{what}: answered {got!r}, expected {want!r}")


def check(app: App, client: Client) -> str:
    """Run the contract's checks; return what each step cost in Redis commands."""
    if not app.sessions:
        for path in ("/incr", "/read", "/untouched"):
            _, names, _ = client.get(path)
            if names:
                raise Failed(f"GET {path} set cookies {names} without sessions")
        return "no sessions"
    body, names, first = client.get("/incr")
    expect("first GET /incr", body, "1")
    if app.cookie not in names or client.cookie is None:
        raise Failed(f"first GET /incr set no {app.cookie!r} cookie (set: {names})")
    body, _, incr = client.get("/incr")
    expect("GET /incr", body, "2")
    body, _, read = client.get("/read")
    expect("GET /read", body, "2")
    _, names, untouched = client.get("/untouched")
    if names:
        raise Failed(f"GET /untouched set cookies {names}")
    costs = f"first {first} | incr {incr} | read {read} | untouched {untouched}"
    if app.atomic:
        body, _, atomic = client.get("/atomic")
        expect("GET /atomic", body, "3")
        costs += f" | atomic {atomic}"
    return costs


def run_app(app: App, redis_url: str, monitor: Monitor) -> tuple[bool, str]:
    port = free_port()
    command = [part.format(port=port, workers=1) for part in app.command]
    env = {**os.environ, **app.env, "REDIS_URL": redis_url}
    with tempfile.TemporaryFile() as log:
        try:
            proc = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            return False, f"cannot start: {exc}"
        try:
            wait_for_port(proc, port, START_TIMEOUT)
            return True, check(app, Client(port, app.cookie, monitor))
        except (Failed, OSError, http.client.HTTPException) as exc:
            stop(proc)
            log.seek(0)
            tail = log.read().decode("utf-8", "replace").strip().splitlines()[-5:]
            return False, str(exc) + "".join(f"\n    | {line}" for line in tail)
        finally:
            stop(proc)


def main(argv: list[str] | None = None) -> int:
    names = sys.argv[1:] if argv is None else argv
    unknown = set(names) - {app.name for app in APPS}
    if unknown:
        print(f"unknown app(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    apps = [app for app in APPS if not names or app.name in names]
    server = LocalServer(appendonly=False).start()
    failed = 0
    try:
        probe = redis.Redis.from_url(server.url)
        monitor = Monitor(server, probe)
        width = max(len(app.name) for app in apps)
        for app in apps:
            ok, detail = run_app(app, server.url, monitor)
            failed += not ok
            print(f"{'ok' if ok else 'FAIL':4}  {app.name:{width}}  {detail}", flush=True)
        monitor.close()
        probe.close()
    finally:
        server.stop()
    print(f"{len(apps) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
