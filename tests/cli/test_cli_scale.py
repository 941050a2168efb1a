"""ls and purge on 100,000 sessions: correct (every key exactly once, every session deleted)
and within the suite's time budget. The measured seconds are printed (pytest -s or -rP)."""

from __future__ import annotations

import json
import re
import time

import pytest
import redis

from tests.cli.clikit import invoke, run_script, seed_many

N = 100_000
# Generous bounds (about 3x what a 2-core machine takes): they catch a listing that went
# quadratic or lost its paging, not a slow CI runner.
LS_BUDGET_S = 40.0
PURGE_BUDGET_S = 10.0


@pytest.mark.slow
def test_ls_and_purge_100k_sessions(clean_redis: redis.Redis, redis_url: str) -> None:
    seed_many(clean_redis, N)
    kept_key = "other:{seed-keep}"
    clean_redis.hset(kept_key, "user", '"keep"')
    assert clean_redis.dbsize() == N + 1

    # ls as the real console script, the whole keyspace streamed as one JSON array.
    done, ls_seconds = run_script(["--url", redis_url, "ls", "--json", "--limit", "0"], timeout=120)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    keys = {row["key"] for row in rows}
    assert len(rows) == N and len(keys) == N
    assert all(re.fullmatch(r"sess:\{seed-\d{38}\}", key) for key in keys)
    assert {row["user"] for row in rows} == {f"user-{i}" for i in range(1000)}

    started = time.perf_counter()
    result = invoke(redis_url, "purge", "--yes")
    purge_seconds = time.perf_counter() - started
    assert result.stdout.startswith(f"deleted {N:,} sessions in ")
    assert clean_redis.dbsize() == 1 and clean_redis.exists(kept_key)

    print(
        f"\n100,000 sessions: ls --json --limit 0 {ls_seconds:.2f} s (subprocess), "
        f"purge --yes {purge_seconds:.2f} s"
    )
    assert ls_seconds < LS_BUDGET_S
    assert purge_seconds < PURGE_BUDGET_S
