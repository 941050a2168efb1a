"""Rich output of the ``redis-sessions`` commands: streamed tables and JSON, the session view,
the stats report and the purge progress bar. Everything streams: nothing here keeps more than
one table chunk of sessions in memory."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import IO, Any

from rich import box
from rich.console import Console
from rich.highlighter import JSONHighlighter
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from .._report import (
    Histogram,
    SessionStats,
    human_age,
    human_bytes,
    human_duration,
    human_ttl,
    iso_time,
)
from ..store._listing import SessionInfo
from ..store._sync import RedisStore
from ._format import json_row, json_text, printable

__all__ = ["print_session", "print_stats", "print_table", "purge_with_progress", "write_json_array"]

_CHUNK = 100  # rows per printed table: the console renders a chunk, then forgets it
_BAR_WIDTH = 32


def _limited(infos: Iterable[SessionInfo], limit: int) -> Iterator[SessionInfo]:
    return iter(infos) if limit == 0 else islice(infos, limit)


def write_json_array(stream: IO[str], infos: Iterable[SessionInfo], limit: int, now_ms: int) -> int:
    """Write the sessions as a JSON array, one object per line, as they arrive -> count."""
    count = 0
    stream.write("[")
    for info in _limited(infos, limit):
        stream.write(",\n" if count else "\n")
        stream.write(json_text(json_row(info, now_ms)))
        count += 1
    stream.write("\n]\n" if count else "]\n")
    return count


def _line(key: str, key_width: int, age: str, idle: str, ttl: str, size: str, user: str) -> str:
    return f"{key:<{key_width}}  {age:>6}  {idle:>6}  {ttl:>6}  {size:>9}  {user}"


def print_table(console: Console, infos: Iterator[SessionInfo], limit: int, now_ms: int) -> int:
    """Print sessions as aligned columns, chunk by chunk as SCAN pages arrive -> rows shown.

    Takes at most `limit` items (0: all) from `infos`, so the caller can tell whether more
    follow. Rows are formatted here rather than by a rich Table, which costs about 1 ms a row
    (minutes for a million sessions); the header is styled by rich.
    """
    rows = _limited(infos, limit)
    stream = console.file
    shown = 0
    while True:
        chunk = list(islice(rows, _CHUNK))
        if not chunk:
            return shown
        if shown == 0:
            # Keys all have the same length in practice (a 43-character handle).
            key_width = max(len(info.key) for info in chunk)
            header = _line("key", key_width, "age", "idle", "TTL", "size", "user")
            console.print(
                Text(header, style="bold"), Text("─" * len(header)), sep="\n", soft_wrap=True
            )
        lines = [
            _line(
                printable(info.key),
                key_width,
                human_age(info, now_ms),
                human_duration(info.idle_s),
                human_ttl(info.ttl_ms),
                human_bytes(info.size),
                printable(info.user or "-"),
            )
            for info in chunk
        ]
        stream.write("\n".join(lines) + "\n")
        stream.flush()
        shown += len(chunk)


def print_session(
    console: Console, info: SessionInfo, data: dict[str, Any] | None, now_ms: int
) -> None:
    """Print a session's metadata, then its data as highlighted JSON."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    ttl = f"{human_ttl(info.ttl_ms)} ({info.ttl_ms:,} ms)"
    if info.ttl_ms < 0:
        ttl = "none (no expiry)"
    if info.created_ms is None:
        created = "unknown"
    else:
        created = f"{iso_time(info.created_ms)} ({human_age(info, now_ms)} ago)"
    exact_size = info.size is not None and info.size >= 1024
    rows = [
        ("key", info.key),
        ("handle", info.handle),
        ("user", info.user or "-"),
        ("TTL", ttl),
        ("created", created),
        ("idle", human_duration(info.idle_s)),
        ("size", human_bytes(info.size) + (f" ({info.size:,} B)" if exact_size else "")),
        ("fields", f"{info.fields} (data keys and metadata)"),
    ]
    for name, value in rows:
        grid.add_row(name, Text(printable(value)))
    console.print(grid)
    console.print()
    if data is None:
        console.print("data: not readable (not a redis-sessions hash, corrupt, or too large)")
    else:
        # rich's JSON view re-encodes with json.dumps, which lets C1 controls through.
        console.print(JSONHighlighter()(json_text(data, indent=2, default=repr)))


def _histogram_table(title: str, histogram: Histogram, total: int) -> Table:
    table = Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False
    )
    table.add_column("bucket", no_wrap=True)
    table.add_column("sessions", justify="right", no_wrap=True)
    table.add_column("share", justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)
    buckets = histogram.buckets()
    peak = max((count for _, count in buckets), default=0)
    for label, count in buckets:
        cells = round(_BAR_WIDTH * count / peak) if peak else 0
        bar = "█" * cells or ("▏" if count else "")
        share = f"{100 * count / total:.1f}%" if total else "-"
        table.add_row(label, f"{count:,}", share, Text(bar, style="cyan"))
    return table


def print_stats(console: Console, stats: SessionStats, where: str) -> None:
    """Print the stats report: summary, TTL and age histograms, top users."""
    console.print(Text(f"Sessions under {printable(where)}", style="bold"))
    summary = Table.grid(padding=(0, 2))
    summary.add_column()
    summary.add_column(justify="right")
    summary.add_column()
    average = stats.average_size
    unknown = (
        f" ({stats.memory_unknown:,} sessions without MEMORY USAGE)" if stats.memory_unknown else ""
    )
    users = stats.users
    distinct = (
        f"{len(users.counts):,} distinct users"
        if users.exact
        else f"more than {users.capacity:,} distinct users"
    )
    summary.add_row("count", f"{stats.count:,}", "")
    summary.add_row("memory", human_bytes(stats.memory), "sum of MEMORY USAGE" + unknown)
    summary.add_row("average size", human_bytes(None if average is None else round(average)), "")
    summary.add_row("with a user", f"{stats.with_user:,}", distinct if stats.with_user else "")
    console.print(summary)
    if stats.count == 0:
        return
    console.print()
    console.print(_histogram_table("TTL (time left)", stats.ttl, stats.count))
    console.print()
    console.print(_histogram_table("Age (since creation)", stats.age, stats.count))
    top = users.top(stats.top_n)
    if top:
        console.print()
        title = "Top users" if users.exact else "Top users (approximate: lower bounds)"
        table = Table(
            title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False
        )
        table.add_column("user", overflow="fold")
        table.add_column("sessions", justify="right", no_wrap=True)
        for user, count in top:
            table.add_row(Text(printable(user)), f"{count:,}")
        console.print(table)


def purge_with_progress(console: Console, store: RedisStore) -> int:
    """Run `store.clear` behind a progress bar -> how many sessions were deleted."""
    # The total is unknown without a full SCAN first, so the bar pulses and counts.
    columns = (
        SpinnerColumn(),
        TextColumn("purging"),
        BarColumn(),
        TextColumn("{task.completed:,.0f} deleted"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("purge", total=None)
        deleted = store.clear(progress=lambda count: progress.update(task, completed=count))
        progress.update(task, total=max(deleted, 1), completed=deleted)
    return deleted
