"""`store/_sync.py` and `store/_async.py` must stay twins: nobody edits one runner alone.

The async file is normalised (``async``/``await`` dropped, the client and class names mapped to
their sync names) and must then equal the sync file, except for the few lines listed in
`ALLOWED`, which are the only differences the two files are allowed to have.
"""

from __future__ import annotations

import difflib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import redis_sessions.store

STORE_DIR = Path(redis_sessions.store.__file__).resolve().parent

# Name mappings, applied in order (longest names first).
RENAMES = [
    ("import redis.asyncio\n", "import redis\n"),
    ("import redis.asyncio.cluster\n", "import redis.cluster\n"),
    ("redis.asyncio.cluster.RedisCluster", "redis.cluster.RedisCluster"),
    ("redis.asyncio.Redis", "redis.Redis"),
    ("AsyncRedisStore", "RedisStore"),
    ("AsyncRunner", "SyncRunner"),
    ("TaskGate", "ThreadGate"),
    ("cluster_ready_async", "cluster_ready"),
    ("AsyncClient", "Client"),
    ("AsyncIterator", "Iterator"),
    ("connect_async", "connect"),
    ("aclose", "close"),
    ("import asyncio\n", "import time\n"),
    ("asyncio.sleep(", "time.sleep("),
]

# Known differences: (text in the normalised async file, text in the sync file). Each must
# occur exactly once on its side, so a stale entry fails as well.
ALLOWED = [
    # module docstring
    (
        '"""The asyncio Redis store: the shared flows of `_layouts` run on `redis.Redis`.\n',
        '"""The synchronous Redis store: the shared flows of `_layouts` run on `redis.Redis`.\n',
    ),
    (
        "This file and `_sync.py` differ only by ``async``/``await`` and the client type",
        "This file and `_async.py` differ only by ``async``/``await`` and the client type",
    ),
    # imports sorted by their own names
    ("import time\nimport functools\n", "import functools\nimport time\n"),
    (
        "from collections.abc import Iterator, Callable, Mapping\n",
        "from collections.abc import Callable, Iterator, Mapping\n",
    ),
    # first line of the store class docstring
    (
        '"""Sessions in Redis, for asyncio code (ASGI, Starlette, FastAPI).\n',
        '"""Sessions in Redis, for sync code (WSGI, Flask, Django).\n',
    ),
    # no `yield from` in an async generator
    (
        "            for handle in dedup.fresh(handles):\n                yield handle\n",
        "            yield from dedup.fresh(handles)\n",
    ),
    (
        "            for item in found.items():\n                yield item\n",
        "            yield from found.items()\n",
    ),
    (
        "            for info in infos:\n                yield info\n",
        "            yield from infos\n",
    ),
    # no sum() over an async generator
    ("return sum([1 for _ in self.ids()])", "return sum(1 for _ in self.ids())"),
]


def normalise_async(text: str) -> str:
    """The async source as it would read in sync form."""
    text = re.sub(r"\basync (?=def |for |with )", "", text)
    text = re.sub(r"\[1 async for ", "[1 for ", text)
    text = re.sub(r"\bawait ", "", text)
    for old, new in RENAMES:
        text = text.replace(old, new)
    return text


def apply_allowed(async_text: str, sync_text: str) -> str:
    """Replace each allowed async variant by its sync counterpart (checking both exist)."""
    for async_part, sync_part in ALLOWED:
        assert async_text.count(async_part) == 1, f"stale ALLOWED entry (async): {async_part!r}"
        assert sync_text.count(sync_part) == 1, f"stale ALLOWED entry (sync): {sync_part!r}"
        async_text = async_text.replace(async_part, sync_part)
    return async_text


def _formatted(text: str) -> str:
    """`text` as ``ruff format`` lays it out (dropping ``async`` shortens lines)."""
    ruff = Path(sys.executable).with_name("ruff")
    done = subprocess.run(
        [str(ruff), "format", "--stdin-filename", "_sync.py", "-"],
        input=text,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def differences(sync_text: str, async_text: str) -> list[str]:
    """Unified diff of the sync file against the normalised async file (empty: twins)."""
    normalised = _formatted(apply_allowed(normalise_async(async_text), sync_text))
    return list(
        difflib.unified_diff(
            sync_text.splitlines(),
            normalised.splitlines(),
            "_sync.py",
            "_async.py (normalised)",
            lineterm="",
        )
    )


@pytest.fixture(scope="module")
def sources() -> tuple[str, str]:
    return (
        (STORE_DIR / "_sync.py").read_text("utf-8"),
        (STORE_DIR / "_async.py").read_text("utf-8"),
    )


def test_sync_and_async_runners_are_twins(sources: tuple[str, str]) -> None:
    sync_text, async_text = sources
    diff = differences(sync_text, async_text)
    assert not diff, "store/_sync.py and store/_async.py drifted apart:\n" + "\n".join(diff)


def test_async_file_really_is_async(sources: tuple[str, str]) -> None:
    """The normalisation has something to do: the async file awaits its client."""
    _, async_text = sources
    assert "await self._runner.run(" in async_text
    assert "await client.execute_command(" in async_text
    assert "import redis.asyncio" in async_text
    assert "async def aclose(self)" in async_text


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("        self.health.ok(command.writes)\n", ""),  # a line dropped
        ("return deleted", "return deleted + 0"),  # a line changed
        ('"EVAL", command.source', '"EVAL", command.sha'),
    ],
)
def test_a_one_sided_edit_is_caught(sources: tuple[str, str], old: str, new: str) -> None:
    sync_text, async_text = sources
    assert old in sync_text
    assert differences(sync_text.replace(old, new, 1), async_text)
    assert old in async_text
    assert differences(sync_text, async_text.replace(old, new, 1))
