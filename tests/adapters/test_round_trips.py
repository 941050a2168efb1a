"""The round-trip budget of DESIGN §4, for both adapters, counted two ways: client-side
round trips and the server's own `INFO commandstats`."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from redis_sessions.engine import Signer
from tests.adapters.adapterkit import RoundTrips, make_client
from tests.adapters.apps import SECRET
from tests.support.servers import command_counts, command_delta

# (request, expected round trips, expected top-level commands as the server counts them)
BUDGET = [
    ("untouched without cookie", 0, {}),
    ("tampered cookie", 0, {}),
    ("read", 1, {"evalsha": 1}),
    ("modify", 2, {"evalsha": 2}),
    ("new and written", 1, {"evalsha": 1}),
    ("destroy", 2, {"evalsha": 1, "del": 1}),
]
# Commands run inside our two Lua scripts (counted by commandstats too, not round trips).
SCRIPT_INNER = {"type", "hmget", "pttl", "pexpire", "hgetall", "hset", "hdel", "exists"}


def run_request(http: Any, what: str, cookie: str) -> None:
    if what == "untouched without cookie":
        http.get("/get")
    elif what == "tampered cookie":
        http.get("/get", headers={"cookie": "session=" + cookie[:-2] + "xx"})
    elif what == "read":
        http.get("/get", headers={"cookie": "session=" + cookie})
    elif what == "modify":
        http.get("/set?k=v2", headers={"cookie": "session=" + cookie})
    elif what == "new and written":
        http.get("/set?k=v")
    else:
        http.get("/logout", headers={"cookie": "session=" + cookie})


@pytest.mark.parametrize(("what", "trips", "commands"), BUDGET, ids=[b[0] for b in BUDGET])
def test_round_trip_budget(
    kind: str,
    redis_url: str,
    clean_redis: redis.Redis,
    what: str,
    trips: int,
    commands: dict[str, int],
) -> None:
    http, store = make_client(kind, redis_url)
    counter = RoundTrips(store)
    with http:
        # Warm up: scripts cached on the server, connections open.
        cookie = http.get("/set?k=v").cookies["session"]
        http.get("/get")
        http.cookies.clear()
        assert Signer(SECRET).unsign(cookie) is not None
        counter.count = 0
        before = command_counts(clean_redis)
        run_request(http, what, cookie)
        delta = command_delta(before, command_counts(clean_redis))
    top_level = {k: v for k, v in delta.items() if k not in SCRIPT_INNER}
    print(f"\n{kind} {what}: {counter.count} round trips, commands {delta}")
    assert counter.count == trips
    assert top_level == commands


def test_rolling_read_refreshes_ttl_and_cookie_in_one_round_trip(
    kind: str, redis_url: str, clean_redis: redis.Redis
) -> None:
    http, store = make_client(kind, redis_url, rolling=True)
    counter = RoundTrips(store)
    with http:
        cookie = http.get("/set?k=v").cookies["session"]
        http.cookies.clear()
        (key,) = clean_redis.scan_iter(match="sess:*")
        clean_redis.pexpire(key, 1000)
        counter.count = 0
        response = http.get("/get", headers={"cookie": "session=" + cookie})
    assert counter.count == 1
    assert "Max-Age=86400" in response.headers["set-cookie"]
    assert clean_redis.pttl(key) > 86_000_000
