"""F6: a write whose reply is lost is re-sent by redis-py; our writes apply exactly once.

A fault proxy between the store and Redis delivers the command, drops the reply and cuts the
connection; the client's `Retry` re-sends on a new connection."""

from __future__ import annotations

import pytest
import redis

from redis_sessions import ConnectOptions, RedisStore, StoreUnavailableError, connect
from redis_sessions.engine import LockHold, Write, handle_for, new_id
from tests.support.faultproxy import FaultProxy

RESEND = ConnectOptions(socket_timeout=1, retries=2, backoff_base=0.01, backoff_cap=0.05)


def _store(proxy: FaultProxy) -> RedisStore:
    client = connect(proxy.url, RESEND)
    store = RedisStore(client)
    client.ping()  # connected first, so the dropped reply is the write's own
    return store


def test_update_with_lost_reply_applies_once(redis_url: str, clean_redis: redis.Redis) -> None:
    host, port = redis_url.removeprefix("redis://").split("/")[0].split(":")
    with FaultProxy(host, int(port)) as proxy:
        store = _store(proxy)
        handle = handle_for(new_id())
        store.set(handle, {"a": 1, "gone": True})
        proxy.drop_next_reply()
        plan = Write(
            handle=handle,
            fields={"a": b"2", "b": b"3"},
            delete=("gone",),
            ttl_ms=60_000,
            create=False,
        )
        assert store.commit(plan).applied is True
        assert store.get(handle) == {"a": 2, "b": 3}
        assert 0 < clean_redis.pttl(f"sess:{{{handle}}}") <= 60_000
        store.close()
        # Control: without retries the client sees the lost reply, though the write applied.
        client = connect(proxy.url, ConnectOptions(retries=0))
        no_retry = RedisStore(client)
        client.ping()
        proxy.drop_next_reply()
        with pytest.raises(StoreUnavailableError):
            no_retry.commit(
                Write(handle=handle, fields={"c": b"4"}, delete=(), ttl_ms=60_000, create=False)
            )
        assert store.get(handle) == {"a": 2, "b": 3, "c": 4}
        no_retry.close()


def test_regenerate_with_lost_reply_reports_success_and_leaves_one_session(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    host, port = redis_url.removeprefix("redis://").split("/")[0].split(":")
    with FaultProxy(host, int(port)) as proxy:
        store = _store(proxy)
        old, new = handle_for(new_id()), handle_for(new_id())
        store.set(old, {"user": "bob"})
        proxy.drop_next_reply()
        plan = Write(
            handle=new,
            fields={"user": b'"bob"', "$c": b"1"},
            delete=(),
            ttl_ms=60_000,
            create=True,
            regenerated_from=old,
        )
        assert store.commit(plan).applied is True
        assert store.get(old) is None
        assert store.get(new) == {"user": "bob"}
        assert clean_redis.exists(f"sess:{{{old}}}") == 0
        store.close()


def test_increment_with_lost_reply_applies_once(redis_url: str, clean_redis: redis.Redis) -> None:
    host, port = redis_url.removeprefix("redis://").split("/")[0].split(":")
    with FaultProxy(host, int(port)) as proxy:
        store = _store(proxy)
        handle = handle_for(new_id())
        store.set(handle, {"n": 5})
        proxy.drop_next_reply()
        plan = Write(
            handle=handle,
            fields={},
            delete=(),
            ttl_ms=60_000,
            create=False,
            incr=(("n", 3),),
            nonce="a1b2c3d4e5f60718",
        )
        result = store.commit(plan)
        assert result.applied is True
        assert store.get(handle) == {"n": 8}  # not 11: the re-sent increment found its nonce
        assert result.values == {"n": b"8"}
        store.close()


def test_locked_save_with_lost_reply_is_not_reported_as_a_lost_lock(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    host, port = redis_url.removeprefix("redis://").split("/")[0].split(":")
    with FaultProxy(host, int(port)) as proxy:
        store = _store(proxy)
        handle = handle_for(new_id())
        store.set(handle, {"n": 1})
        clean_redis.set(f"sess:{{{handle}}}:lock", "token-1", px=10_000)
        proxy.drop_next_reply()
        plan = Write(
            handle=handle,
            fields={"n": b"2"},
            delete=(),
            ttl_ms=60_000,
            create=False,
            nonce="0123456789abcdef",
            hold=LockHold("token-1", release=True),
        )
        # The first send applied it and freed the lock; the re-send finds its nonce.
        assert store.commit(plan).applied is True
        assert store.get(handle) == {"n": 2}
        assert clean_redis.exists(f"sess:{{{handle}}}:lock") == 0
        store.close()
