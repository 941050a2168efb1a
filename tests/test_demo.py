"""The demo end to end: 2 workers share the count, it survives a restart, login/logout work."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis

from redis_sessions.server import free_port
from tests.support.servers import wait_until


def start_demo(port: int, data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    # The console script, as a user runs it (`make demo` does the same).
    script = Path(sys.executable).with_name("redis-sessions")
    command = [str(script), "demo", "--port", str(port), "--dir", str(data_dir), "--workers", "2"]
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


def answering(url: str) -> bool:
    try:
        httpx.get(url, timeout=0.5)
    except httpx.TransportError:
        return False
    return True


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_demo(proc: subprocess.Popen[bytes], log: Path) -> None:
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 0, log.read_text()
    pids = re.findall(r"Local server pid (\d+)", log.read_text())
    assert pids, log.read_text()
    # The demo stops the server it started (by its PID).
    wait_until(lambda: not pid_alive(int(pids[-1])), 10, message="demo left its server running")


def visit(client: httpx.Client, url: str) -> tuple[int, int]:
    page = client.get(url).text
    count = re.search(r"visited this page (\d+) time", page)
    pid = re.search(r"pid (\d+)", page)
    assert count and pid, page
    return int(count.group(1)), int(pid.group(1))


def test_demo_counts_across_workers_survives_restart_and_logs_in(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "demo.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    proc = start_demo(port, data_dir, log)
    try:
        wait_until(lambda: answering(url), 30, message="demo did not start")
        assert f"Demo at {url}" in log.read_text()
        # The dashboard has a token (the same in every worker), printed in the URL to open.
        found = re.search(
            rf"Sessions dashboard: ({re.escape(url)}_sessions/)\?token=([\w-]{{43}})",
            log.read_text(),
        )
        assert found, log.read_text()
        with httpx.Client() as admin:
            assert admin.get(found.group(1)).status_code == 401
            assert (
                admin.get(found.group(1), headers={"x-forwarded-for": "127.0.0.1"}).status_code
                == 401
            )
            login = admin.get(found.group(1), params={"token": found.group(2)})
            assert login.status_code == 303 and login.headers["location"] == "/_sessions/"
            # Every request on a new connection: both workers accept the login cookie.
            pages = [admin.get(found.group(1), headers={"connection": "close"}) for _ in range(6)]
            assert {page.status_code for page in pages} == {200}
        with httpx.Client() as client:
            seen = [visit(client, url) for _ in range(20)]
            assert [count for count, _ in seen] == list(range(1, 21))
            # Which worker accepts a connection is the kernel's choice: on a busy machine one
            # may win many times in a row, so keep counting (bounded) until a second one serves.
            while len({pid for _, pid in seen}) < 2 and len(seen) < 200:
                seen.append(visit(client, url))
                assert seen[-1][0] == len(seen)
            jar = client.cookies
        workers = {pid for _, pid in seen}
        print(f"\nworker pids seen over {len(seen)} requests: {sorted(workers)}")
        assert len(workers) > 1
        visits = len(seen)
        server_url = (data_dir / "server.url").read_text().strip()
        password = (data_dir / "server.password").read_text()
        assert server_url.startswith(f"redis://:{password}@127.0.0.1:")
        for private in ("server.url", "server.password", "demo-secret", "server.log"):
            assert (data_dir / private).stat().st_mode & 0o777 == 0o600, private
        assert data_dir.stat().st_mode & 0o777 == 0o700
        anonymous = redis.Redis.from_url(server_url.replace(f":{password}@", ""))
        with anonymous, pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        page = httpx.get(url).text
        assert password not in page and "redis://:***@127.0.0.1:" in page
    finally:
        if proc.poll() is None:
            stop_demo(proc, log)
    assert not (data_dir / "server.url").exists()
    proc = start_demo(port, data_dir, log)
    try:
        wait_until(lambda: answering(url), 30, message="demo did not restart")
        with httpx.Client(cookies=jar) as client:
            assert visit(client, url)[0] == visits + 1
            assert client.get(url + "api/me").status_code == 401
            # The login form carries a CSRF token: a post without it (login CSRF) is refused.
            assert client.post(url + "login", data={"user": "eve"}).status_code == 403
            csrf = re.search(r"name=csrf value=([\w-]+)", client.get(url + "login").text)
            assert csrf, "no CSRF field in the login form"
            assert (
                client.post(url + "login", data={"user": "eve", "csrf": "x" * 22}).status_code
                == 403
            )
            before = client.cookies["session"]
            response = client.post(url + "login", data={"user": "ada", "csrf": csrf.group(1)})
            assert client.cookies["session"].split(".")[0] != before.split(".")[0]
            assert response.status_code == 303 and response.headers["location"] == "/"
            me = client.get(url + "api/me")
            assert me.status_code == 200 and me.json()["user"] == "ada"
            assert me.json()["views"] == visits + 1  # the login kept the data under a new id
            client.post(url + "logout")
            assert client.get(url + "api/me").status_code == 401
    finally:
        if proc.poll() is None:
            stop_demo(proc, log)


@pytest.mark.parametrize(
    "plant", ["secret-of-another-user", "secret-readable-by-others", "dir-writable-by-others"]
)
def test_demo_refuses_a_planted_secret_or_data_dir(tmp_path: Path, plant: str) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "demo.log"
    data_dir.mkdir(mode=0o700)
    secret = data_dir / "demo-secret"
    secret.write_text("known-to-the-planter")
    secret.chmod(0o600)
    if plant == "secret-of-another-user":
        os.chown(secret, 65534, 65534)  # nobody
    elif plant == "secret-readable-by-others":
        secret.chmod(0o644)
    else:
        data_dir.chmod(0o777)
    proc = start_demo(free_port(), data_dir, log)
    assert proc.wait(timeout=30) == 1, log.read_text()
    text = log.read_text()
    assert "error: " in text and "Traceback" not in text, text
    assert str(data_dir if plant.startswith("dir") else secret) in text, text
    assert not (data_dir / "server.url").exists()
    assert "Local server pid" not in text  # refused before any server started
