"""The ``redis-sessions`` command line: look at and manage the sessions in Redis.

``ls``, ``show``, ``rm``, ``stats`` and ``purge`` go through `RedisStore` only (SCAN pages,
never KEYS or FLUSHALL), so they work on millions of sessions with flat memory. ``demo``,
``server`` and ``dashboard`` (in `_serve`) start the demo app, a local server and the
sessions dashboard. Run ``redis-sessions --help`` or see ``docs/cli.md``. Also runnable as
``python -m redis_sessions.cli``.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click
from redis.exceptions import RedisError

from .._errors import StoreUnavailableError
from ..store._listing import SessionInfo
from ._common import (
    DEFAULT_DATA_DIR,
    NO_URL,
    CliError,
    Settings,
    console,
    current_settings,
    resolve_url,
    safe_url,
)
from ._format import json_text, printable
from ._serve import dashboard_command, demo_command, server_command

__all__ = ["DEFAULT_DATA_DIR", "NO_URL", "CliError", "cli", "main", "resolve_url"]

_F = TypeVar("_F", bound=Callable[..., Any])


class _Group(click.Group):
    """Turns Redis failures of any command into one line and exit status 1 (no traceback)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StoreUnavailableError as exc:
            raise CliError(f"Redis at {_where(ctx)} is unavailable ({exc.reason})") from None
        except RedisError as exc:
            # The server's words: printable, like everything else that came from Redis.
            first_line = printable((str(exc) or type(exc).__name__).splitlines()[0])
            raise CliError(f"Redis at {_where(ctx)} refused the command: {first_line}") from None


def _where(ctx: click.Context) -> str:
    # A Redis error means a store was built, so the URL is known.
    settings: Settings = ctx.find_object(Settings)  # type: ignore[assignment]
    return safe_url(settings.url)


def _handle_from(settings: Settings, text: str) -> str:
    """A handle from a full key ``sess:{h}``, ``{h}`` or a bare handle."""
    handle = settings.store().layout.handle_of(text)
    if handle is not None:
        return handle
    if text.startswith("{") and text.endswith("}"):
        return text[1:-1]
    if "{" in text and text.endswith("}"):
        raise CliError(
            f"{text!r} is not a key under the prefix {settings.prefix!r} (pass --prefix)"
        )
    return text


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--url",
    metavar="URL",
    default=None,
    help="Redis URL. Default: $REDIS_URL, else the server of a running "
    "`redis-sessions demo` (./.redis-sessions-data/server.url).",
)
@click.option("--prefix", default="sess:", show_default=True, help="Session key prefix.")
@click.option(
    "--user-field",
    default="user",
    show_default=True,
    help="Session key holding the user (shown by ls, stats and show).",
)
@click.version_option(package_name="redis-sessions", prog_name="redis-sessions")
@click.pass_context
def cli(ctx: click.Context, url: str | None, prefix: str, user_field: str) -> None:
    """Look at and manage the sessions stored in Redis by redis-sessions.

    Listing is SCAN-based, page by page: it never blocks Redis and never loads every session
    into memory.
    """
    settings = Settings(url, prefix, user_field)
    ctx.obj = settings
    ctx.call_on_close(settings.close)
    # The store logs outages for servers; here the error message says it already.
    store_logger = logging.getLogger("redis_sessions")
    if not any(isinstance(h, logging.NullHandler) for h in store_logger.handlers):
        store_logger.addHandler(logging.NullHandler())


def _json_option(help_text: str) -> Callable[[_F], _F]:
    return click.option("--json", "as_json", is_flag=True, help=help_text)


# -- ls -------------------------------------------------------------------------------------------


def _matching(settings: Settings, match: str, user: str | None) -> Iterator[SessionInfo]:
    if match.startswith(settings.prefix + "{"):  # a key prefix was given: keep its handle part
        match = match[len(settings.prefix) + 1 :]
    infos = settings.store().sessions(match=match, user_field=settings.user_field)
    if user is None:
        return infos
    return (info for info in infos if info.user == user)


@cli.command("ls")
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(min=0),
    help="Stop after this many sessions (0: all of them).",
)
@click.option(
    "--match",
    default="",
    metavar="HANDLE_PREFIX",
    help="Only sessions whose handle starts with this (a key prefix works too).",
)
@click.option("--user", default=None, metavar="NAME", help="Only sessions of this user.")
@_json_option("Print a JSON array (streamed, one session per line) instead of a table.")
def ls_command(limit: int, match: str, user: str | None, as_json: bool) -> None:
    """List sessions: key, age, idle time, TTL, size and user.

    \b
    Example:
      redis-sessions ls --user alice --limit 0
    """
    from ._output import print_table, write_json_array

    settings = current_settings()
    infos = _matching(settings, match, user)
    now = _now_ms()
    if as_json:
        write_json_array(sys.stdout, infos, limit, now)
        return
    shown = print_table(console(), infos, limit, now)
    noun = "session" if shown == 1 else "sessions"
    if not limit or shown < limit:
        click.echo(f"{shown:,} {noun}" if shown else "no sessions")
    elif user is None and next(infos, None) is None:  # one more SCAN page at most
        click.echo(f"{shown:,} {noun}")
    else:
        # With --user, peeking could scan the whole rest of the keyspace: do not.
        click.echo(f"{shown:,} {noun} shown (--limit reached; --limit 0 lists all)")


def _now_ms() -> int:
    return int(time.time() * 1000)


_SHOW_WIDTH = 120  # piped `show` output: wide enough for a key and JSON lines, uncut


# -- show -----------------------------------------------------------------------------------------


@cli.command("show")
@click.argument("key")
@_json_option('Print {"session": metadata, "data": data} as JSON.')
def show_command(key: str, as_json: bool) -> None:
    """Show one session: metadata and data. KEY is a full key (sess:{...}) or a handle.

    \b
    Example:
      redis-sessions show 'sess:{3q2R...}'
    """
    from ._output import print_session

    settings = current_settings()
    handle = _handle_from(settings, key)
    store = settings.store()
    info = store.describe(handle, user_field=settings.user_field)
    if info is None:
        raise CliError(f"no session {store.layout.key(handle)} (wrong key, expired or deleted)")
    data = store.get(handle)
    if as_json:
        from ._format import json_row

        document = {"session": json_row(info, _now_ms()), "data": data}
        click.echo(json_text(document, indent=2, default=repr))
        return
    print_session(console(width=_SHOW_WIDTH), info, data, _now_ms())


# -- rm -------------------------------------------------------------------------------------------


@cli.command("rm")
@click.argument("keys", nargs=-1, required=True)
def rm_command(keys: tuple[str, ...]) -> None:
    """Delete sessions (KEY: full key or handle). Exit status 1 if none of them existed.

    \b
    Example:
      redis-sessions rm 'sess:{3q2R...}' 'sess:{Xk9a...}'
    """
    settings = current_settings()
    handles = list(dict.fromkeys(_handle_from(settings, k) for k in keys))
    deleted = settings.store().destroy(*handles)
    click.echo(f"deleted {deleted} of {len(handles)} session{'s' if len(handles) != 1 else ''}")
    if deleted == 0:
        raise CliError("none of the given sessions existed")


# -- stats ----------------------------------------------------------------------------------------


@cli.command("stats")
@click.option(
    "--top",
    default=10,
    show_default=True,
    type=click.IntRange(min=0),
    help="How many users to list by session count.",
)
@_json_option("Print the figures as one JSON object.")
def stats_command(top: int, as_json: bool) -> None:
    """Count, memory, TTL and age histograms and top users, in one SCAN pass.

    \b
    Example:
      redis-sessions stats --top 5
    """
    from .._report import SessionStats
    from ._output import print_stats

    settings = current_settings()
    stats = SessionStats(_now_ms(), top=top)
    for info in settings.store().sessions(user_field=settings.user_field):
        stats.add(info)
    if as_json:
        document = {"url": safe_url(settings.url), "prefix": settings.prefix, **stats.as_json()}
        click.echo(json_text(document, indent=2))
        return
    print_stats(console(), stats, f"{settings.prefix!r} at {safe_url(settings.url)}")


# -- purge ----------------------------------------------------------------------------------------


def _stdin_is_tty() -> bool:
    return sys.stdin.isatty()


@cli.command("purge")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def purge_command(yes: bool) -> None:
    """Delete every session under the prefix (SCAN + UNLINK, page by page), with a progress bar.

    Asks for confirmation; without a terminal, --yes is required.

    \b
    Example:
      redis-sessions --url redis://localhost:6379/0 purge --yes
    """
    from ._output import purge_with_progress

    settings = current_settings()
    target = f"every session under {settings.prefix!r} at {safe_url(settings.url)}"
    if not yes:
        if not _stdin_is_tty():
            raise CliError(
                f"refusing to delete {target} without confirmation: "
                "pass --yes (no terminal to ask on)"
            )
        click.confirm(f"Delete {target}?", abort=True)
    started = time.perf_counter()
    deleted = purge_with_progress(console(stderr=True), settings.store())
    elapsed = time.perf_counter() - started
    click.echo(f"deleted {deleted:,} session{'s' if deleted != 1 else ''} in {elapsed:.2f} s")


for _command in (demo_command, server_command, dashboard_command):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``redis-sessions`` console script."""
    cli.main(args=argv, prog_name="redis-sessions")
