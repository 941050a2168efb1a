"""`RoundTrips` (tests/servers.py) counts through the runner's `on_execute` hook: the store's
own runner keeps running, with the pool options it was built with."""

from __future__ import annotations

import asyncio

import pytest

from redis_sessions import (
    AsyncMemoryStore,
    ConnectOptions,
    MemoryStore,
    RedisStore,
    StoreUnavailableError,
)
from redis_sessions.server import free_port
from tests.support.servers import RoundTrips


def test_counting_keeps_the_runner_and_its_pool_options() -> None:
    # A Cluster store made while no node answers: pool options and a client built later.
    url = f"redis+cluster://127.0.0.1:{free_port()}/"
    store = RedisStore(url=url, connect_options=ConnectOptions(max_connections=3, pool_timeout=0.3))
    try:
        runner = store._runner
        counter = RoundTrips(store)
        assert store._runner is runner
        assert runner.connect_later is not None
        assert runner.pool_wait == 0.3
        assert runner.gate is not None
        with pytest.raises(StoreUnavailableError, match="cluster"):
            store.get("h")  # still this store's answer: unavailable, no node reachable
        assert counter.take() == 1
    finally:
        store.close()


def test_one_count_per_round_trip_sync_and_async() -> None:
    store = MemoryStore()
    counter = RoundTrips(store)
    assert store.set("h", {"a": 1})
    assert store.get("h") == {"a": 1}
    assert store.destroy() == 0  # no handles: no round trip
    assert counter.take() == 2
    assert store.get("h") == {"a": 1}
    assert counter.take() == 1

    async def scenario() -> int:
        astore = AsyncMemoryStore()
        acounter = RoundTrips(astore)
        await astore.set("h", {"a": 1})
        assert await astore.get("h") == {"a": 1}
        return acounter.count

    assert asyncio.run(scenario()) == 2


def test_two_counters_on_one_store_both_count() -> None:
    store = MemoryStore()
    first, second = RoundTrips(store), RoundTrips(store)
    store.get("h")
    assert (first.count, second.count) == (1, 1)
