"""`make demo` end to end: the counter counts, and keeps counting after a restart."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from redis_sessions.server import free_port
from servers import wait_until


def start_demo(port: int, data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "redis_sessions.demo", "--port", str(port),
             "--dir", str(data_dir)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def answering(url: str) -> bool:
    try:
        httpx.get(url, timeout=0.5)
    except httpx.TransportError:
        return False
    return True


def stop_demo(proc: subprocess.Popen[bytes], log: Path) -> None:
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=15) == 0
    pids = re.findall(r"Local server pid (\d+)", log.read_text())
    assert pids, log.read_text()
    server_pid = int(pids[-1])
    # The demo stops the server it started (by its PID).
    wait_until(lambda: not pid_alive(server_pid), 10, message="demo left its server running")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def count_in(page: str) -> int:
    match = re.search(r"visited this page (\d+) time", page)
    assert match, page
    return int(match.group(1))


def test_demo_counts_per_session_and_survives_a_restart(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "demo.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    jar = httpx.Cookies()
    proc = start_demo(port, data_dir, log)
    try:
        wait_until(lambda: answering(url), 30, message="demo did not start")
        assert f"Demo at {url}" in log.read_text()
        with httpx.Client(cookies=jar) as client:
            assert [count_in(client.get(url).text) for _ in range(3)] == [1, 2, 3]
            jar = client.cookies
        with httpx.Client() as stranger:
            assert count_in(stranger.get(url).text) == 1
    finally:
        if proc.poll() is None:
            stop_demo(proc, log)
    assert (data_dir / "demo-secret").exists()
    proc = start_demo(port, data_dir, log)
    try:
        wait_until(lambda: answering(url), 30, message="demo did not restart")
        with httpx.Client(cookies=jar) as client:
            assert count_in(client.get(url).text) == 4
            client.post(url + "reset")
            assert count_in(client.get(url).text) == 1
    finally:
        if proc.poll() is None:
            stop_demo(proc, log)
