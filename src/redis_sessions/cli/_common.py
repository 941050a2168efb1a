"""What the ``redis-sessions`` commands share: the URL resolution, the settings object that
builds the store, the error type and the rich console."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .._private_files import UnsafePathError, read_private
from .._redact import redact_url
from ..server import URL_FILE
from ..store._sync import RedisStore

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "DEFAULT_DATA_DIR",
    "NO_URL",
    "CliError",
    "Settings",
    "console",
    "current_settings",
    "resolve_url",
    "safe_url",
]

DEFAULT_DATA_DIR = ".redis-sessions-data"
"""Data directory of ``demo`` and ``server``, relative to the working directory (``make demo``)."""

NO_URL = "no Redis URL: pass --url, set REDIS_URL, or start `redis-sessions demo`"


class CliError(click.ClickException):
    """A failure reported as one line on stderr (``Error: ...``) with exit status 1."""

    exit_code = 1


def resolve_url(explicit: str | None, data_dir: str | os.PathLike[str] = DEFAULT_DATA_DIR) -> str:
    """The Redis URL to use: `explicit` (``--url``), else ``$REDIS_URL``, else the URL the
    running demo wrote to ``<data_dir>/server.url``.

    The URL file is used only when it and its directory belong to the current user and no one
    else can write them (and the file, which holds the password, is 0600): another user could
    otherwise plant one in a shared working directory and choose the server.

    Raises:
        CliError: none of them is set, or the URL file is refused.
    """
    if explicit:
        return explicit
    env = os.environ.get("REDIS_URL")
    if env:
        return env
    try:
        written = read_private(Path(data_dir) / URL_FILE)
    except UnsafePathError as exc:
        raise CliError(f"{exc}; or pass --url") from None
    except OSError:
        written = None
    if written:
        return written
    raise CliError(NO_URL)


safe_url = redact_url
"""`url` without its passwords, for messages (`redact_url`)."""


@dataclass
class Settings:
    """The global options, and the store built from them on first use."""

    url_option: str | None
    prefix: str
    user_field: str
    resolved_url: str | None = field(default=None, init=False)
    """The URL once `url` has resolved it (None before: messages then name no server)."""
    _store: RedisStore | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        """The URL to connect to (see `resolve_url`), resolved on first use."""
        if self.resolved_url is None:
            self.resolved_url = resolve_url(self.url_option)
        return self.resolved_url

    def store(self) -> RedisStore:
        """The sync store for the data commands (built once, closed with the context)."""
        if self._store is None:
            try:
                self._store = RedisStore(url=self.url, prefix=self.prefix)
            except ValueError as exc:  # a malformed URL
                raise CliError(f"invalid Redis URL {safe_url(self.url)!r}: {exc}") from None
        return self._store

    def close(self) -> None:
        """Close the store's connections, if any were opened."""
        if self._store is not None:
            self._store.close()
            self._store = None


def current_settings() -> Settings:
    """The `Settings` of the running command."""
    return click.get_current_context().find_object(Settings)  # type: ignore[return-value]


def console(stderr: bool = False, width: int | None = None) -> Console:
    """A rich console on the current stdout/stderr (CliRunner swaps them); piped output gets
    `width` columns so that keys are never cut."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    result = Console(file=stream, stderr=stderr, highlight=False)
    if width is not None and not result.is_terminal:
        result = Console(file=stream, stderr=stderr, highlight=False, width=width)
    return result
