"""The installed ``redis-sessions`` console script as real processes: ``server`` in the
foreground, and ``demo`` whose server the data commands find without --url."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
from pathlib import Path

import httpx

from redis_sessions import RedisStore
from redis_sessions.server import free_port
from tests.cli.clikit import console_script, run_script
from tests.support.servers import wait_until


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def read_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "no output from the process in time"
    return proc.stdout.readline().decode().strip()


def env_without_redis_url() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "REDIS_URL"}


def test_server_command_runs_a_server_until_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*console_script(), "server", "--dir", str(tmp_path / "data"), "--appendfsync", "no"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        shown = read_line(proc, 15)
        assert shown.startswith("redis://:***@127.0.0.1:")  # the password stays off the screen
        url = (tmp_path / "data" / "server.url").read_text().strip()
        assert url == shown.replace("***", (tmp_path / "data" / "server.password").read_text())
        store = RedisStore(url=url)
        store.set("via-server", {"user": "erin"})
        store.close()
        done, _ = run_script(["--url", url, "ls", "--json"])
        assert done.returncode == 0, done.stderr
        assert [r["user"] for r in json.loads(done.stdout)] == ["erin"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.terminate()  # handled like Ctrl-C: stops the server it started too
            proc.communicate(timeout=15)
            raise
    assert proc.returncode == 0, err
    pid = int(err.decode().split("pid ", 1)[1].split(",", 1)[0])
    assert not pid_alive(pid)
    assert (tmp_path / "data" / "server.log").exists()


def test_demo_server_is_found_by_the_other_commands(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*console_script(), "demo", "--port", str(port), "--workers", "1"],
            cwd=tmp_path,
            env=env_without_redis_url(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url_file = tmp_path / ".redis-sessions-data" / "server.url"
    try:
        wait_until(url_file.exists, 20, message=f"no server.url:\n{log.read_text()}")

        def answers() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(answers, 20, message=f"the demo does not answer:\n{log.read_text()}")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as browser:
            browser.get("/")
            browser.get("/")
        done, _ = run_script(["ls", "--json"], cwd=tmp_path, env=env_without_redis_url())
        assert done.returncode == 0, done.stderr
        rows = json.loads(done.stdout)
        assert len(rows) >= 1 and all(r["key"].startswith("sess:{") for r in rows)
        assert f"data directory: {tmp_path / '.redis-sessions-data'}" in log.read_text()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0, log.read_text()
    assert not url_file.exists()  # the demo removes it when it stops its server
    done, _ = run_script(["ls"], cwd=tmp_path, env=env_without_redis_url())
    assert (done.returncode, done.stderr) == (
        1,
        b"Error: no Redis URL: pass --url, set REDIS_URL, or start `redis-sessions demo`\n",
    )
