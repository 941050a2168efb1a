"""Regenerate the measured figures of docs/reliability.md from the tests that measure them.

Usage: ``.venv/bin/python bench/reliability.py [PATH ...]`` (``make reliability``), default paths
``tests/faults tests/adapters tests/store tests/sentinel tests/cluster``. Runs ``python -m
pytest PATH ... -s -v -p no:cacheprovider`` from the repository root (``-v`` so that each
test's node id precedes its output), collects every line ``FIGURE <case> k=v ...`` the tests
print (`faultkit.figure`), and rewrites the block of docs/reliability.md between
``<!-- figures:start -->`` and ``<!-- figures:end -->``: date, server, Python and redis-py
versions, CPU count, the command, and one table row per FIGURE line.

``--from-log FILE`` parses the output of an earlier pytest run instead of running one. A run
with failing tests leaves the document alone unless ``--allow-failures`` is given (the rows of
tests that did not pass are then marked). Exit status 1, with a message, when the markers are
missing, no FIGURE line was found or tests failed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from redis_sessions.server import ServerNotFoundError, find_server_binary

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"
DEFAULT_PATHS = ("tests/faults", "tests/adapters", "tests/store", "tests/sentinel", "tests/cluster")
PYTEST_OPTIONS = ("-s", "-v", "-p", "no:cacheprovider")
START = "<!-- figures:start -->"
END = "<!-- figures:end -->"

_OUTCOMES = "PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS"
_NODE = re.compile(rf"^(?P<node>\S+\.py::\S+)(?:\s+(?P<outcome>{_OUTCOMES})\b)?")
# The short summary (-ra): "FAILED tests/x.py::test_y - reason".
_SUMMARY = re.compile(rf"^(?P<outcome>{_OUTCOMES})\s+(?P<node>\S+\.py::\S+)")
# An outcome that ends a test's output in -v -s mode: "PASSED", "XFAIL (reason) [ 40%]".
_TRAILING = re.compile(rf"(?:^|\s)(?P<outcome>{_OUTCOMES})(?:\s+\(.*\))?(?:\s+\[\s*\d+%\])?\s*$")
_FIGURE = re.compile(r"^FIGURE\s+(?P<case>\S+)(?P<rest>.*)$")
# The last line: "==== 10 passed, 1 xfailed in 19.80s ====" (-q: without the "=").
_RESULT = re.compile(r"^=*\s*(?P<result>\d+ [a-z]+(?:, \d+ [a-z]+)* in [\d.]+s\b.*?)\s*=*$")
# Worse outcomes win when a node reports twice (a teardown ERROR after PASSED).
_RANK = {"PASSED": 0, "SKIPPED": 1, "XFAIL": 2, "XPASS": 3, "FAILED": 4, "ERROR": 5}


class ReportError(Exception):
    """A reason not to (re)write the section; the message is shown to the user as is."""


@dataclass(frozen=True)
class Figure:
    """One FIGURE line: the case, its ``key=value`` pairs in order, and the test printing it."""

    case: str
    values: tuple[tuple[str, str], ...]
    test: str | None = None


@dataclass
class Report:
    """What a pytest log says: the figures, each test's outcome, the final summary line."""

    figures: list[Figure] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)
    result: str | None = None

    def failed(self) -> list[str]:
        """Node ids of the tests that failed or errored."""
        return [node for node, outcome in self.outcomes.items() if outcome in ("FAILED", "ERROR")]


def parse_values(text: str) -> tuple[tuple[str, str], ...]:
    """``"a=1 b=x y"`` -> ``(("a", "1"), ("b", "x y"))``: a word without ``=`` continues the
    previous value."""
    pairs: list[list[str]] = []
    for word in text.split():
        key, sep, value = word.partition("=")
        if sep and key:
            pairs.append([key, value])
        elif pairs:
            pairs[-1][1] += " " + word
        else:
            pairs.append([word, ""])
    return tuple((key, value) for key, value in pairs)


def parse_log(text: str) -> Report:
    """Collect the FIGURE lines of a pytest log, each with the node id that printed it (when
    the log is verbose) and every test's outcome."""
    report = Report()
    node: str | None = None

    def record(name: str | None, outcome: str) -> None:
        if name is not None and _RANK[outcome] >= _RANK.get(report.outcomes.get(name, ""), -1):
            report.outcomes[name] = outcome

    for line in text.splitlines():
        line = line.rstrip()
        if match := _FIGURE.match(line):
            report.figures.append(Figure(match["case"], parse_values(match["rest"]), node))
        elif match := _SUMMARY.match(line):
            record(match["node"], match["outcome"])
        elif match := _NODE.match(line):
            node = match["node"]
            if match["outcome"]:
                record(node, match["outcome"])
        elif match := _RESULT.match(line):
            report.result = match["result"]
        elif match := _TRAILING.search(line):
            record(node, match["outcome"])
    return report


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_value(key: str, value: str) -> str:
    """``max_503_seconds=1.070`` -> ``max 503: 1.070 s`` (also ``0.1/0.2``); ``True`` -> ``yes``."""
    words = key.split("_")
    unit = ""
    if "seconds" in words and re.fullmatch(r"-?\d+(\.\d+)?(/-?\d+(\.\d+)?)*", value):
        words.remove("seconds")
        unit = " s"
    shown = {"True": "yes", "False": "no"}.get(value, value)
    label = " ".join(words) or key
    return f"{label}: {shown}{unit}"


def render_table(figures: list[Figure], outcomes: dict[str, str]) -> str:
    """A markdown table, one row per figure; a test column when any figure has a node id."""
    with_test = any(f.test for f in figures)
    header = ["case", "test", "figures"] if with_test else ["case", "figures"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for fig in figures:
        cells = [f"`{_cell(fig.case)}`"]
        if with_test:
            test = f"`{fig.test}`" if fig.test else ""
            outcome = outcomes.get(fig.test or "", "PASSED")
            if fig.test and outcome != "PASSED":
                test += f" ({outcome.lower()})"
            cells.append(_cell(test))
        cells.append(_cell(", ".join(render_value(k, v) for k, v in fig.values)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Environment:
    """Where and how the figures were measured."""

    date: str
    server: str
    python: str
    redis_py: str
    cpus: str
    command: str
    result: str | None = None


def render_section(report: Report, env: Environment) -> str:
    """The text between the markers (without them)."""
    if not report.figures:
        raise ReportError("no FIGURE line found in the pytest output: nothing to publish")
    result = f" Result: {env.result}." if env.result else ""
    return "\n".join(
        [
            "<!-- generated by bench/reliability.py (make reliability): "
            "edit the script, not this -->",
            f"Measured {env.date} with {env.server}, Python {env.python}, redis-py {env.redis_py}, "
            f"{env.cpus} CPUs.",
            f"Command: `{env.command}`.{result}",
            "",
            render_table(report.figures, report.outcomes),
        ]
    )


def replace_section(doc: str, section: str) -> str:
    """`doc` with the text between the markers replaced by `section`."""
    check_markers(doc)
    head, rest = doc.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{section.strip()}\n{END}{tail}"


def check_markers(doc: str, name: str = "the document") -> None:
    """Raise `ReportError` unless `doc` has each marker once, start before end."""
    starts, ends = doc.count(START), doc.count(END)
    if starts != 1 or ends != 1 or doc.index(START) > doc.index(END):
        raise ReportError(
            f"{name} needs exactly one {START} followed by one {END} around the figures "
            f"(found {starts} start and {ends} end markers)"
        )


def server_version() -> str:
    """``valkey-server 8.1.8``: the binary the tests use, from its ``--version``."""
    try:
        binary = find_server_binary()
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (ServerNotFoundError, OSError, subprocess.SubprocessError) as exc:
        return f"an unknown server ({exc})"
    match = re.search(r"\bv=(\S+)", out)
    return f"{Path(binary).name} {match[1]}" if match else out.strip()


def environment(command: str, result: str | None, when: datetime.datetime) -> Environment:
    """The environment of this machine, for a run described by `command` at `when`."""
    return Environment(
        date=when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        server=server_version(),
        python=platform.python_version(),
        redis_py=metadata.version("redis"),
        cpus=str(os.cpu_count() or "?"),
        command=command,
        result=result,
    )


def shown_python() -> str:
    """The interpreter as a user would type it from the repository root."""
    python = Path(sys.executable)
    try:
        return str(python.relative_to(ROOT))
    except ValueError:
        return str(python)


def run_pytest(paths: list[str]) -> tuple[str, int, str]:
    """Run the tests, echoing their output -> (output, exit status, command as shown)."""
    command = [sys.executable, "-m", "pytest", *paths, *PYTEST_OPTIONS]
    shown = shlex.join([shown_python(), *command[1:]])
    print(f"running: {shown}", flush=True)
    lines: list[str] = []
    with subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            lines.append(line)
    return "".join(lines), proc.returncode, shown


def main(argv: list[str] | None = None) -> int:
    """Run (or read) the tests' output and rewrite the figures block; 0 on success, else 1."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "paths", nargs="*", default=list(DEFAULT_PATHS), help="test paths (default: %(default)s)"
    )
    parser.add_argument(
        "--from-log",
        type=Path,
        metavar="FILE",
        help="parse this pytest output instead of running the tests",
    )
    parser.add_argument("--doc", type=Path, default=DOC, help="document to rewrite")
    parser.add_argument(
        "--allow-failures",
        action="store_true",
        help="publish even if tests failed (their rows are marked)",
    )
    args = parser.parse_args(argv)
    try:
        doc = args.doc.read_text(encoding="utf-8")
        check_markers(doc, str(args.doc))
        if args.from_log:
            log = args.from_log.read_text(encoding="utf-8", errors="replace")
            when = datetime.datetime.fromtimestamp(
                args.from_log.stat().st_mtime, datetime.timezone.utc
            )
            status, command = 0, f"bench/reliability.py --from-log {args.from_log}"
        else:
            log, status, command = run_pytest(args.paths)
            when = datetime.datetime.now(datetime.timezone.utc)
        report = parse_log(log)
        failed = report.failed()
        if (status != 0 or failed) and not args.allow_failures:
            listed = "".join(f"\n  {node}" for node in failed)
            raise ReportError(
                f"the tests failed (pytest exit status {status}){listed}\n"
                f"{args.doc} left unchanged (--allow-failures publishes anyway)"
            )
        section = render_section(report, environment(command, report.result, when))
        args.doc.write_text(replace_section(doc, section), encoding="utf-8")
    except (ReportError, OSError) as exc:
        print(f"bench/reliability.py: {exc}", file=sys.stderr)
        return 1
    print(f"{args.doc}: {len(report.figures)} figures written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
