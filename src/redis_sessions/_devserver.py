"""The development server in the foreground: ``redis-sessions server`` and ``python -m
redis_sessions.server`` (both parse their options with the same click command, then call `run`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Literal

from ._private_files import UnsafePathError, write_private
from ._redact import redact_url
from .server import URL_FILE, dev_server

__all__ = ["main", "run"]


class _Terminate(Exception):
    """Raised by the SIGTERM handler of `run` to leave the wait like Ctrl-C does."""


def _set_handler(
    signum: int, handler: Callable[[int, FrameType | None], object] | int
) -> Callable[[int, FrameType | None], object] | int | None:
    # signal.signal only works in the main thread; elsewhere run() simply does without.
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signum, handler)


def _raise_terminate(signum: int, frame: FrameType | None) -> None:
    raise _Terminate


def run(
    data_dir: str | os.PathLike[str],
    *,
    port: int | None = None,
    appendfsync: Literal["always", "everysec", "no"] = "everysec",
    unix_socket: bool = False,
) -> int:
    """Run the server of `data_dir` (`dev_server`) until Ctrl-C or SIGTERM -> exit status.

    Prints the URL on stdout with its password masked (then the unix URL with `unix_socket`),
    and details on stderr: the full URL is in ``<data_dir>/server.url`` (0600) while it runs,
    since what a terminal prints often ends up in logs other users can read. Returns 0 after a
    requested stop, 1 when the server fails to start or dies on its own (the reason on stderr).

    Raises:
        ValueError: an invalid option (`port` out of range, `appendfsync` unknown), before
            anything starts.
    """
    try:
        server = dev_server(data_dir, port=port, unix_socket=unix_socket, appendfsync=appendfsync)
    except UnsafePathError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    previous_term = _set_handler(signal.SIGTERM, _raise_terminate)
    try:
        try:
            server.start()
        except RuntimeError as exc:  # includes ServerNotFoundError
            print(f"error: {exc}", file=sys.stderr)
            return 1
        # Where the other `redis-sessions` commands look for a local server without --url.
        url_file = server.data_dir / URL_FILE
        write_private(url_file, server.url + "\n")
        print(redact_url(server.url), flush=True)
        if server.unix_path is not None:
            print(redact_url(server.unix_url), flush=True)
        print(
            f"pid {server.pid}, data in {server.data_dir}, log in {server.log_path}; "
            f'the URL with its password is in {url_file} (REDIS_URL="$(cat {url_file})"); '
            "Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        code = server.wait()
        print(f"error: the server exited with code {code}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, _Terminate):
        return 0
    finally:
        # A second Ctrl-C must not abandon the shutdown halfway.
        previous_int = _set_handler(signal.SIGINT, signal.SIG_IGN)
        _set_handler(signal.SIGTERM, signal.SIG_IGN)
        try:
            (server.data_dir / URL_FILE).unlink(missing_ok=True)
            server.stop()
        finally:
            if previous_int is not None:
                _set_handler(signal.SIGINT, previous_int)
            if previous_term is not None:
                _set_handler(signal.SIGTERM, previous_term)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` with the ``redis-sessions server`` command (click, from the ``cli`` extra)
    and `run` -> exit status: 0 after a requested stop, 1 when the server fails to start or
    dies on its own; a usage error exits with status 2 (`SystemExit`).
    """
    try:
        import click

        from .cli._serve import server_command
    except ImportError as exc:  # the cli extra is not installed
        print(
            f"error: python -m redis_sessions.server needs {exc.name or 'click'}: "
            "pip install 'redis-sessions[cli]'",
            file=sys.stderr,
        )
        return 1
    try:
        code = server_command.main(
            args=None if argv is None else list(argv),
            prog_name="python -m redis_sessions.server",
            standalone_mode=False,
        )
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    return int(code or 0)
