"""Servers the suite starts die with it: a pytest run killed with SIGKILL leaves none behind.

The inner run starts a `LocalServer` from the main thread, one from a short-lived thread (the
fault tests do that) and a Sentinel, writes their PIDs, and waits to be killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.servers import wait_until

INNER = textwrap.dedent("""
    import threading, time
    from pathlib import Path
    from redis_sessions.server import LocalServer
    from tests.support.sentinelkit import SentinelProcess

    def test_start_and_wait(tmp_path):
        main = LocalServer(appendonly=False).start()
        threaded = LocalServer(appendonly=False)
        starter = threading.Thread(target=threaded.start)
        starter.start()
        starter.join()
        sentinel = SentinelProcess(tmp_path / "sentinel", main.port, "svc").start()
        pids = [main.pid, threaded.pid, sentinel.pid]
        Path(__file__).with_name("pids").write_text(" ".join(map(str, pids)))
        deadline = time.monotonic() + 60  # bounded: the outer test kills us long before
        while time.monotonic() < deadline:
            time.sleep(0.05)
""")


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie (an orphan's zombie may wait for a reaper)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_killed_runner_leaves_no_server(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(INNER)
    tests = Path(__file__).parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(tests), str(tests.parent / "src"), os.environ.get("PYTHONPATH", "")]
        ),
    }
    runner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "--no-cov",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            "-c",
            os.devnull,
            str(tmp_path / "test_inner.py"),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pid_file = tmp_path / "pids"
    try:
        wait_until(
            lambda: pid_file.exists() and pid_file.read_text(),
            30,
            message="the inner run started no servers",
        )
    finally:
        runner.kill()  # SIGKILL: no atexit hook, no fixture teardown runs
        runner.wait()
    pids = [int(pid) for pid in pid_file.read_text().split()]
    try:
        wait_until(
            lambda: not any(_alive(pid) for pid in pids),
            10,
            message=f"servers outlived their runner: {[p for p in pids if _alive(p)]}",
        )
    finally:
        for pid in pids:  # a failure must not leave them running either
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
