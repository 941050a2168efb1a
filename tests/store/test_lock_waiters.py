"""`lock_waiters`: one session cannot tie up more than that many workers waiting for its lock."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from redis_sessions import (
    AsyncRedisStore,
    RedisStore,
    SessionConfig,
    SessionLockError,
    connect,
    connect_async,
)
from redis_sessions.engine import SessionEngine, handle_for
from tests.store.storekit import spec_for
from tests.support.servers import command_counts, command_delta, wait_until

SID = "w" * 43
BOUND = 3


def engine_for(store: RedisStore | AsyncRedisStore) -> SessionEngine:
    config = SessionConfig(
        secret="s" * 32, lock=True, lock_timeout=30, lock_ttl=30, lock_waiters=BOUND
    )
    return SessionEngine(config, serializer=store.serializer, max_size=store.max_size)


def waiting(store: RedisStore | AsyncRedisStore) -> int:
    return sum(len(v) for v in store.layout._waiters._waiting.values())


def test_threads_beyond_the_bound_get_the_lock_error_at_once(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    store = RedisStore(connect(redis_url))
    engine = engine_for(store)
    store.set(handle_for(SID), {"a": 1})
    holder = store.load(spec_for(engine, SID, lock=True))
    assert holder is not None and holder.lock

    def request() -> str:
        try:
            store.load(spec_for(engine, SID, lock=True))
        except SessionLockError as exc:
            return exc.reason
        return "got it"

    with ThreadPoolExecutor(max_workers=BOUND + 1) as pool:
        waiters = [pool.submit(request) for _ in range(BOUND)]
        wait_until(lambda: waiting(store) == BOUND, 10, message="waiters queued")
        before = command_counts(clean_redis)
        started = time.monotonic()
        assert pool.submit(request).result(timeout=5) == "lock waiters"
        assert time.monotonic() - started < 5  # not lock_timeout (30 s)
        assert command_delta(before, command_counts(clean_redis)).get("evalsha", 0) <= BOUND * 60
        # The holder lets go: the first waiter takes the lock, the others keep waiting for it.
        clean_redis.delete(store.layout.lock_key(handle_for(SID)))
        wait_until(lambda: any(w.done() for w in waiters), 10, message="one waiter served")
        clean_redis.delete(store.layout.lock_key(handle_for(SID)))
        wait_until(lambda: sum(w.done() for w in waiters) >= 2, 10)
        clean_redis.delete(store.layout.lock_key(handle_for(SID)))
        assert [w.result(timeout=10) for w in waiters] == ["got it"] * BOUND
    assert waiting(store) == 0
    store.close()


@pytest.mark.anyio
async def test_tasks_beyond_the_bound_get_the_lock_error_without_a_redis_call(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    store = AsyncRedisStore(connect_async(redis_url))
    engine = engine_for(store)
    handle = handle_for(SID)
    await store.set(handle, {"a": 1})
    assert await store.load(spec_for(engine, SID, lock=True))

    async def request() -> str:
        try:
            await store.load(spec_for(engine, SID, lock=True))
        except SessionLockError as exc:
            return exc.reason
        return "got it"

    tasks = [asyncio.ensure_future(request()) for _ in range(BOUND)]
    while waiting(store) < BOUND:
        await asyncio.sleep(0.01)
    assert await request() == "lock waiters"  # at once: the others still wait (30 s)
    assert not any(t.done() for t in tasks)
    for _ in range(BOUND):
        clean_redis.delete(store.layout.lock_key(handle))
        done_before = sum(t.done() for t in tasks)
        while sum(t.done() for t in tasks) == done_before:
            await asyncio.sleep(0.01)
    assert await asyncio.gather(*tasks) == ["got it"] * BOUND
    assert waiting(store) == 0
    await store.aclose()
