"""The wire protocol: pinned to RESP2 whatever redis-py's default, RESP3 on request, and a
RESP3 push frame (a CLIENT TRACKING invalidation) on a pooled connection breaks nothing.

The store contract runs on RESP3 too: the "sync-resp3" / "async-resp3" runners of
tests/store/conftest.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis

from redis_sessions import (
    AsyncRedisStore,
    ConfigError,
    ConnectOptions,
    RedisStore,
    connect,
    connect_async,
)


def hello_proto(client: Any) -> int:
    return int(client.execute_command("CLIENT", "INFO").decode().split(" resp=")[1].split()[0])


def tracked_keys(admin: redis.Redis) -> int:
    return int(admin.info("stats")["tracking_total_keys"])


def test_protocol_pinned_to_resp2(redis_url: str) -> None:
    # redis-py 8 speaks RESP3 when not told; our clients say which.
    client = connect(redis_url)
    try:
        assert hello_proto(client) == 2
    finally:
        client.close()

    async def asked() -> int:
        aclient = connect_async(redis_url)
        try:
            info = await aclient.execute_command("CLIENT", "INFO")
            return int(info.decode().split(" resp=")[1].split()[0])
        finally:
            await aclient.aclose()

    assert asyncio.run(asked()) == 2


def test_resp3_on_request(redis_url: str) -> None:
    client = connect(redis_url, ConnectOptions(protocol=3))
    try:
        assert hello_proto(client) == 3
    finally:
        client.close()


@pytest.mark.parametrize("bad", [1, 4, "3", True])
def test_bad_protocol_is_a_config_error(bad: Any) -> None:
    with pytest.raises(ConfigError, match="protocol"):
        ConnectOptions(protocol=bad)


def test_push_frame_on_pooled_connection_async(redis_url: str, clean_redis: redis.Redis) -> None:
    # One pooled connection, tracking on: a write by another client sends it an invalidation
    # push. The next command on it must get its own reply, not the push.
    async def scenario() -> None:
        store = AsyncRedisStore(
            connect_async(redis_url, ConnectOptions(protocol=3, max_connections=1))
        )
        try:
            assert store.client is not None
            await store.client.execute_command("CLIENT", "TRACKING", "ON")
            await store.set("h", {"n": 1})
            assert await store.get("h") == {"n": 1}
            await store.client.execute_command("HGET", store.layout.key("h"), "x")
            assert tracked_keys(clean_redis) >= 1  # so a write sends this connection a push
            for n in range(2, 5):
                clean_redis.hset(store.layout.key("h"), "x", n)  # an invalidation each
                await store.set("h", {"n": n})
                assert await store.get("h") == {"n": n}
                assert await store.destroy("nothing") == 0
        finally:
            await store.aclose()

    asyncio.run(scenario())


def test_push_frame_on_pooled_connection_sync(redis_url: str, clean_redis: redis.Redis) -> None:
    store = RedisStore(connect(redis_url, ConnectOptions(protocol=3, max_connections=1)))
    try:
        assert store.client is not None
        store.client.execute_command("CLIENT", "TRACKING", "ON")
        store.set("h", {"n": 1})
        assert store.get("h") == {"n": 1}
        store.client.execute_command("HGET", store.layout.key("h"), "x")
        assert tracked_keys(clean_redis) >= 1
        for n in range(2, 5):
            clean_redis.hset(store.layout.key("h"), "x", n)
            store.set("h", {"n": n})
            assert store.get("h") == {"n": n}
            assert store.destroy("nothing") == 0
    finally:
        store.close()
