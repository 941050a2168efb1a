"""Run a local Redis or Valkey server process for tests, demos and development.

`LocalServer` starts a private ``redis-server``/``valkey-server`` in the foreground (as a child
process of this interpreter), waits until it answers ``PING``, and offers the fault hooks tests
need: `LocalServer.kill` (crash), `LocalServer.pause`/`LocalServer.resume` (a hung server) and
`LocalServer.restart` (same port, same data directory, so the append-only file is replayed).

The binary comes from `find_server_binary`; starting and waiting is `redis_sessions._spawn`'s
job. `dev_server` makes the password-protected server of a data directory, and ``python -m
redis_sessions.server`` (the ``redis-sessions server`` command) runs one in the foreground and
prints its URL. This module is not meant to manage a production server.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

from ._private_files import UnsafePathError, private_dir, secret_file, write_private
from ._spawn import (
    ENV_VAR,
    PortInUseError,
    ServerNotFoundError,
    file_size,
    find_server_binary,
    launch,
    wait_ready,
)

__all__ = [
    "ENV_VAR",
    "PASSWORD_FILE",
    "URL_FILE",
    "LocalServer",
    "ServerNotFoundError",
    "UnsafePathError",
    "dev_server",
    "find_server_binary",
    "free_port",
    "main",
]

URL_FILE = "server.url"
"""File in a data directory holding the URL of the local server running on it (written by
``redis-sessions demo`` and ``redis-sessions server``, read by the other commands). It carries
the password, so it is mode 0600, and is refused unless it and its directory are the user's."""

PASSWORD_FILE = "server.password"
"""File in a data directory holding the password of the servers of `dev_server` (mode 0600,
created on first use, so URLs stay valid across restarts)."""

_APPENDFSYNC_VALUES = ("always", "everysec", "no")
_BIND_ATTEMPTS = 3
# sun_path holds 104 bytes on macOS/BSD (108 on Linux), including the terminating NUL.
_MAX_UNIX_PATH_BYTES = 103


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on `host` that was free a moment ago (the OS picks it).

    Another process may take it before it is used; `LocalServer.start` retries for that reason.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# Servers started and not yet stopped. A strong reference keeps a forgotten server object from
# being garbage-collected while its process runs; the atexit hook stops the stragglers, because
# start_new_session=True means a terminal Ctrl-C no longer reaches them.
_live_servers: set[LocalServer] = set()


@atexit.register
def _stop_live_servers() -> None:
    for server in list(_live_servers):
        # Interpreter exit: nobody is left to report a failure to.
        with contextlib.suppress(Exception):
            server.stop(timeout=2.0)


class LocalServer:
    """A ``redis-server``/``valkey-server`` child process on 127.0.0.1, for tests and development.

    Nothing runs until `start` (or ``with LocalServer() as server:``). With ``data_dir=None`` a
    fresh temporary directory is created; ``stop()`` removes it (``stop(cleanup=False)`` keeps
    it), while a directory you pass in is never removed. Without a `port` a free one is chosen at
    the first start and kept for later starts, so URLs stay valid across `restart`.

    The server runs in its own session (a terminal Ctrl-C reaches only this interpreter, which
    then stops the server once), saves no RDB snapshots, and logs to ``<data_dir>/server.log``.
    Servers still running at interpreter exit are stopped.

    Other local users get nothing: the data directory is made 0700 (and refused when someone
    else owns it or can write to it, see `UnsafePathError`), the server's files are created
    0600, protected mode stays on, and the password reaches the server through a 0600
    configuration file rather than the command line that ``ps`` shows. Without a `password`
    any local user can still connect over TCP: `dev_server` sets one.
    """

    def __init__(
        self,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
        unix_socket: bool | str = False,
        appendonly: bool = True,
        appendfsync: Literal["always", "everysec", "no"] = "everysec",
        password: str | None = None,
        extra_args: Sequence[str] = (),
        binary: str | None = None,
        allow_remote: bool = False,
    ) -> None:
        """Configure the server; nothing is started yet.

        Args:
            data_dir: Working directory (AOF, log, default socket). None: a new temporary one.
            port: TCP port. None: a free port chosen at the first `start`.
            host: Address to bind and connect to: a loopback address (or ``localhost``)
                unless `allow_remote`.
            unix_socket: True to also listen on ``<data_dir>/redis.sock`` (a short directory
                under /tmp instead when that path is too long for a unix socket), or a path.
            appendonly: Keep an append-only file, so `kill` followed by `restart` keeps data.
            appendfsync: AOF fsync policy: "always", "everysec" or "no".
            password: Require this password (``requirepass``); it appears in `url`.
            extra_args: More command-line options, appended last (``["--maxmemory", "10mb"]``).
            binary: Server binary. None: `find_server_binary` at start.
            allow_remote: Accept a `host` other machines can reach (``0.0.0.0``, a LAN
                address); it then needs a `password`.

        Raises:
            ValueError: `appendfsync`, `port`, `host` or an explicit `unix_socket` path is
                invalid.
        """
        if appendfsync not in _APPENDFSYNC_VALUES:
            allowed = ", ".join(repr(value) for value in _APPENDFSYNC_VALUES)
            raise ValueError(f"appendfsync must be one of {allowed}, not {appendfsync!r}")
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"port must be between 1 and 65535, not {port!r}")
        if not allow_remote and not _is_loopback(host):
            raise ValueError(
                f"host {host!r} is not a loopback address: the server would be "
                "reachable from other machines (pass allow_remote=True and a "
                "password if that is what you want)"
            )
        if allow_remote and password is None:
            raise ValueError("allow_remote=True needs a password")
        self._owns_data_dir = data_dir is None
        if data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="redis-sessions-"))
        else:
            # Absolute, because the server chdirs into --dir and resolves paths from there.
            self._data_dir = Path(os.path.abspath(os.fspath(data_dir)))
        self._port = port
        self._host = host
        self._auto_unix_socket = unix_socket is True
        self._unix_path: str | None = None
        self._unix_tmp_dir: str | None = None
        if isinstance(unix_socket, str) and unix_socket:
            path = os.path.abspath(unix_socket)
            if len(os.fsencode(path)) > _MAX_UNIX_PATH_BYTES:
                raise ValueError(
                    f"unix socket path is too long ({len(os.fsencode(path))} bytes, "
                    f"at most {_MAX_UNIX_PATH_BYTES}): {path}"
                )
            self._unix_path = path
        self._appendonly = appendonly
        self._appendfsync = appendfsync
        self._password = password
        self._extra_args = tuple(extra_args)
        self._binary = binary
        self._proc: subprocess.Popen[bytes] | None = None

    # -- properties -----------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        """Process id of the server started last (it may have exited since)."""
        if self._proc is None:
            raise RuntimeError("the server has not been started")
        return self._proc.pid

    @property
    def port(self) -> int:
        """TCP port; known once `start` has chosen it (or when given to the constructor)."""
        if self._port is None:
            raise RuntimeError("the server has not been started, so it has no port yet")
        return self._port

    @property
    def host(self) -> str:
        """Address the server binds to."""
        return self._host

    @property
    def unix_path(self) -> str | None:
        """Unix socket path, or None without a unix socket (or before the first start)."""
        return self._unix_path

    @property
    def data_dir(self) -> Path:
        """Working directory of the server: append-only files and ``server.log``."""
        return self._data_dir

    @property
    def log_path(self) -> Path:
        """The server log; start-up errors written to stderr end up there too."""
        return self._data_dir / "server.log"

    @property
    def url(self) -> str:
        """``redis://host:port/0`` URL, with ``:password@`` when a password is set."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        auth = "" if self._password is None else f":{quote(self._password, safe='')}@"
        return f"redis://{auth}{host}:{self.port}/0"

    @property
    def unix_url(self) -> str:
        """``unix:///path?db=0`` URL of the unix socket (with the password as a parameter)."""
        if self._unix_path is None:
            raise RuntimeError("the server has no unix socket (pass unix_socket=True and start it)")
        url = f"unix://{quote(self._unix_path, safe='/')}?db=0"
        if self._password is not None:
            url += f"&password={quote(self._password, safe='')}"
        return url

    @property
    def is_running(self) -> bool:
        """True while the process is alive (paused counts as alive)."""
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> LocalServer:
        """Start the server and return once it answers PING (a no-op when already running).

        When the port was chosen here and another process takes it first, the start is retried
        on a new port (3 attempts in all).

        Raises:
            ServerNotFoundError: no binary (see `find_server_binary`).
            RuntimeError: the process exited or did not answer within `timeout` seconds; the
                message carries the end of the server log.
            UnsafePathError: the data directory belongs to another user or is writable by
                others (a `RuntimeError` too).
        """
        if self.is_running:
            return self
        binary = self._binary or find_server_binary()
        private_dir(self._data_dir)
        unix_path = self._prepare_unix_socket()
        deadline = time.monotonic() + timeout
        requested = self._port
        # Only a port we picked ourselves may be swapped for another one.
        attempts_left = _BIND_ATTEMPTS if requested is None else 1
        while True:
            port = free_port(self._host) if requested is None else requested
            attempts_left -= 1
            try:
                self._launch(binary, port, unix_path, deadline, timeout)
            except PortInUseError:
                if attempts_left <= 0:
                    raise
                continue
            break
        self._port = port
        _live_servers.add(self)
        return self

    def _prepare_unix_socket(self) -> str | None:
        if self._unix_path is not None:
            # An explicit path, or the one chosen by an earlier start (kept for restart).
            Path(self._unix_path).parent.mkdir(parents=True, exist_ok=True)
            return self._unix_path
        if not self._auto_unix_socket:
            return None
        path = str(self._data_dir / "redis.sock")
        if len(os.fsencode(path)) > _MAX_UNIX_PATH_BYTES:
            # /tmp rather than tempfile's default: on macOS $TMPDIR alone is ~50 bytes.
            short_root = "/tmp" if os.path.isdir("/tmp") else None
            self._unix_tmp_dir = tempfile.mkdtemp(prefix="rs-", dir=short_root)
            path = os.path.join(self._unix_tmp_dir, "redis.sock")
        self._unix_path = path
        return path

    @property
    def _config_path(self) -> Path:
        return self._data_dir / "server.conf"

    def _command_line(self, binary: str, port: int, unix_path: str | None) -> list[str]:
        argv = [binary]
        if self._password is not None:
            # In a 0600 file rather than on the command line, which every local user can read.
            write_private(self._config_path, f"requirepass {_config_string(self._password)}\n")
            argv.append(str(self._config_path))
        argv += [
            "--port", str(port),
            "--bind", self._host,
            "--dir", str(self._data_dir),
            "--daemonize", "no",
            "--save", "",
            "--appendonly", "yes" if self._appendonly else "no",
            "--appendfsync", self._appendfsync,
            "--logfile", str(self.log_path),
        ]  # fmt: skip
        if unix_path is not None:
            argv += ["--unixsocket", unix_path, "--unixsocketperm", "700"]
        argv += self._extra_args
        return argv

    def _launch(
        self, binary: str, port: int, unix_path: str | None, deadline: float, timeout: float
    ) -> None:
        log_offset = file_size(self.log_path)
        proc = launch(self._command_line(binary, port, unix_path), self.log_path)
        self._proc = proc
        try:
            wait_ready(
                proc,
                binary=binary,
                host=self._host,
                port=port,
                password=self._password,
                log_path=self.log_path,
                log_offset=log_offset,
                deadline=deadline,
                timeout=timeout,
            )
        except BaseException:
            # Includes KeyboardInterrupt: a half-started server must not outlive the failure.
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            raise

    def stop(self, timeout: float = 5.0, *, cleanup: bool = True) -> None:
        """Stop the server: SIGTERM (AOF is flushed), then SIGKILL after `timeout` seconds.

        Idempotent, and works on a paused server. With `cleanup`, a data directory created by
        this object (``data_dir=None``) and a temporary socket directory are removed; pass
        ``cleanup=False`` to `restart` such a server with its data later.
        """
        proc = self._proc
        if proc is not None and proc.poll() is None:
            # A SIGSTOPped server keeps SIGTERM pending until it is continued.
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _live_servers.discard(self)
        if cleanup:
            self._cleanup()

    def _cleanup(self) -> None:
        if self._unix_tmp_dir is not None:
            shutil.rmtree(self._unix_tmp_dir, ignore_errors=True)
            # The next start picks a fresh directory instead of recreating a known /tmp name.
            self._unix_tmp_dir = None
            self._unix_path = None
        if self._owns_data_dir:
            shutil.rmtree(self._data_dir, ignore_errors=True)

    def kill(self) -> None:
        """Crash the server: SIGKILL and wait for it; nothing is flushed or cleaned up."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        _live_servers.discard(self)

    def pause(self) -> None:
        """Freeze the server with SIGSTOP: connections stay open but nothing is answered."""
        self._running_proc().send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Continue a paused server with SIGCONT."""
        self._running_proc().send_signal(signal.SIGCONT)

    def restart(self, timeout: float = 10.0) -> LocalServer:
        """Start again on the same port and data directory, after `kill` or `stop`.

        A running server is stopped first (keeping its data). The append-only file is replayed
        before PING answers, so data survives a `kill` when `appendonly` was on. A temporary
        data directory only survives ``stop(cleanup=False)`` or `kill`.
        """
        if self._port is None:
            raise RuntimeError("the server has never been started; use start()")
        if self.is_running:
            self.stop(cleanup=False)
        return self.start(timeout)

    def wait(self, timeout: float | None = None) -> int:
        """Block until the server process exits and return its exit code.

        Raises:
            subprocess.TimeoutExpired: it is still running after `timeout` seconds.
        """
        if self._proc is None:
            raise RuntimeError("the server has not been started")
        return self._proc.wait(timeout)

    def _running_proc(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError("the server is not running")
        return self._proc

    def __enter__(self) -> LocalServer:
        """Start the server unless it is already running."""
        if not self.is_running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server (see `stop`)."""
        self.stop()

    def __repr__(self) -> str:
        """Show address, state and data directory."""
        if self._proc is None:
            state = "not started"
        elif self.is_running:
            state = f"running pid={self._proc.pid}"
        else:
            state = f"exited code={self._proc.returncode}"
        port = "?" if self._port is None else str(self._port)
        return f"<LocalServer {self._host}:{port} {state} data_dir={str(self._data_dir)!r}>"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return False


def _config_string(value: str) -> str:
    # Double-quoted with \xHH escapes, which the server's config parser decodes: any password
    # survives, spaces, quotes and newlines included.
    return (
        '"'
        + "".join(chr(b) if chr(b).isalnum() and b < 128 else f"\\x{b:02x}" for b in value.encode())
        + '"'
    )


def dev_server(data_dir: str | os.PathLike[str], **options: Any) -> LocalServer:
    """A `LocalServer` (not started) on `data_dir` with the password kept there.

    The directory is created 0700 (or checked, see `UnsafePathError`) and the password read
    from ``<data_dir>/server.password``, created on first use: ``redis-sessions server`` and
    ``redis-sessions demo`` run their server this way. `options` go to `LocalServer`.
    """
    directory = private_dir(data_dir)
    password = secret_file(directory / PASSWORD_FILE)
    return LocalServer(data_dir=directory, password=password, **options)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m redis_sessions.server``: the ``redis-sessions server`` command, same options
    and parser -> its exit status (see `redis_sessions._devserver.main`)."""
    from . import _devserver  # imported here: it builds on this module

    return _devserver.main(argv)


if __name__ == "__main__":  # pragma: no cover - run as a subprocess by the tests
    raise SystemExit(main())
