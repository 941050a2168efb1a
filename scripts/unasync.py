"""Generate the sync store, ``store/_sync.py``, from the asyncio one, ``store/_async.py``.

The two runners and store classes are twins: one is the other without ``async``/``await``, on
the sync client. So only ``_async.py`` is written by hand; this script derives ``_sync.py`` by
the substitutions of `SUBS` (in order), then ``ruff check --select I --fix`` and ``ruff format``
(the names sort and the lines wrap differently once ``async`` is gone).

    python scripts/unasync.py            # rewrite _sync.py
    python scripts/unasync.py --check    # exit 1, with a diff, when _sync.py is not current
"""

from __future__ import annotations

import argparse
import difflib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STORE = ROOT / "src" / "redis_sessions" / "store"
SOURCE = STORE / "_async.py"
TARGET = STORE / "_sync.py"
CONFIG = ROOT / "pyproject.toml"

HEADER = "# Generated from _async.py by scripts/unasync.py: edit that file, then run the script.\n"

# (pattern, replacement), applied in this order: the specific names before the words in them.
SUBS: list[tuple[str, str]] = [
    # asyncio idioms and their sync twins
    (r"\basync def\b", "def"),
    (r"\basync (for|with)\b", r"\1"),
    (r"\bawait ", ""),
    # an async generator cannot `yield from`: its loops yield one by one
    (r"^( *)for (\w+) in (.+):\n\1    yield \2\n", r"\1yield from \3\n"),
    # nor can sum() take an async generator: a list is built
    (r"\bsum\(\[(.+?) for (.+)\]\)", r"sum(\1 for \2)"),
    (r"^import asyncio\n", "import time\n"),
    (r"\basyncio\.sleep\(", "time.sleep("),
    # the client library
    (r"\bredis\.asyncio\b", "redis"),
    (r"\bAsyncIterator\b", "Iterator"),
    (r"\baclose\b", "close"),
    # this package's names
    (r"\bAsyncRedisStore\b", "RedisStore"),
    (r"\bAsyncRunner\b", "SyncRunner"),
    (r"\bAsyncClient\b", "Client"),
    (r"\bTaskGate\b", "ThreadGate"),
    (r"\bcluster_ready_async\b", "cluster_ready"),
    (r"\bconnect_async\b", "connect"),
    # documentation
    (r"asyncio code \(ASGI, Starlette, FastAPI\)", "sync code (WSGI, Flask, Django)"),
]


def unasync(text: str) -> str:
    """`text` (an asyncio module) with every substitution of `SUBS` applied."""
    for pattern, replacement in SUBS:
        text = re.sub(pattern, replacement, text, flags=re.MULTILINE)
    return text


def _ruff(*args: str, text: str, target: Path) -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            *args,
            "--config",
            str(CONFIG),
            "--stdin-filename",
            str(target),
            "-",
        ],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise SystemExit(f"ruff {' '.join(args)} failed on the generated {target}:\n{done.stderr}")
    return done.stdout


def generate(source_text: str, target: Path = TARGET) -> str:
    """The sync module generated from `source_text`, formatted as ``ruff format`` does."""
    text = HEADER + unasync(source_text)
    text = _ruff("check", "--select", "I", "--fix-only", "--quiet", text=text, target=target)
    return _ruff("format", "--quiet", text=text, target=target)


def _shown(path: Path) -> str:
    # Paths in messages relative to the repository when they are in it.
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 when the target differs"
    )
    parser.add_argument("--source", type=Path, default=SOURCE, help="the asyncio module")
    parser.add_argument("--target", type=Path, default=TARGET, help="the module to generate")
    options = parser.parse_args(argv)
    wanted = generate(options.source.read_text("utf-8"), options.target)
    current = options.target.read_text("utf-8") if options.target.exists() else ""
    if current == wanted:
        return 0
    if options.check:
        sys.stdout.writelines(
            difflib.unified_diff(
                current.splitlines(keepends=True),
                wanted.splitlines(keepends=True),
                f"{_shown(options.target)} (checked in)",
                f"{_shown(options.target)} (generated from {options.source.name})",
            )
        )
        print(
            f"\n{_shown(options.target)} is not what scripts/unasync.py generates from "
            f"{_shown(options.source)}: edit the source, then run scripts/unasync.py",
            file=sys.stderr,
        )
        return 1
    options.target.write_text(wanted, "utf-8")
    print(f"wrote {_shown(options.target)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
