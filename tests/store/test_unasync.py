"""`store/_sync.py` is generated from `store/_async.py` by `scripts/unasync.py`: nobody edits one
runner alone. The check runs here too, so a plain `pytest` catches a drifted copy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "unasync.py"
STORE = ROOT / "src" / "redis_sessions" / "store"


def unasync(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, cwd=ROOT
    )


@pytest.fixture
def copies(tmp_path: Path) -> tuple[Path, Path]:
    """The two store modules, copied where an edit harms nothing."""
    source, target = tmp_path / "_async.py", tmp_path / "_sync.py"
    shutil.copyfile(STORE / "_async.py", source)
    shutil.copyfile(STORE / "_sync.py", target)
    return source, target


def test_the_sync_store_is_what_the_script_generates() -> None:
    done = unasync("--check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""


def test_the_generated_file_says_so_and_awaits_nothing() -> None:
    """The generation has something to do, and its result is the sync store."""
    source = (STORE / "_async.py").read_text("utf-8")
    generated = (STORE / "_sync.py").read_text("utf-8")
    assert "await self._runner.run(" in source
    assert "async def aclose(self)" in source
    assert generated.startswith("# Generated from _async.py by scripts/unasync.py")
    assert "await " not in generated and "async " not in generated
    assert "import asyncio" not in generated and "redis.asyncio" not in generated
    assert "class RedisStore(StoreBase):" in generated
    assert "    def close(self) -> None:" in generated


@pytest.mark.parametrize(
    ("side", "old", "new"),
    [
        ("sync", "        self.health.ok(command.writes)\n", ""),  # a line dropped
        ("sync", "return deleted", "return deleted + 0"),  # a line changed
        ("async", '"EVAL", command.source', '"EVAL", command.sha'),  # the source changed alone
    ],
)
def test_the_check_fails_on_a_drifted_copy(
    copies: tuple[Path, Path], side: str, old: str, new: str
) -> None:
    source, target = copies
    edited = target if side == "sync" else source
    text = edited.read_text("utf-8")
    assert old in text
    edited.write_text(text.replace(old, new, 1), "utf-8")
    before = target.read_text("utf-8")
    done = unasync("--check", "--source", source, "--target", target)
    assert done.returncode == 1
    changed = new.strip() or old.strip()
    assert any(line[:1] in "+-" and changed in line for line in done.stdout.splitlines()), (
        done.stdout
    )
    assert "is not what scripts/unasync.py generates" in done.stderr
    assert target.read_text("utf-8") == before  # --check changes nothing


def test_without_check_the_script_rewrites_the_copy(copies: tuple[Path, Path]) -> None:
    source, target = copies
    target.write_text(target.read_text("utf-8").replace("return deleted", "return 0"), "utf-8")
    done = unasync("--source", source, "--target", target)
    assert done.returncode == 0, done.stderr
    assert target.read_text("utf-8") == (STORE / "_sync.py").read_text("utf-8")
    assert unasync("--check", "--source", source, "--target", target).returncode == 0
