"""F7: restart with a large append-only file; requests during LOADING are 503, never 500.

The sessions are seeded server-side by one Lua loop (fast, and it lands in the AOF like any other
write). The restart runs in a helper thread because `LocalServer.start` returns only once the
replay is over; the test thread keeps sending sequential requests meanwhile (the helper thread
never touches the app or its client).
"""

from __future__ import annotations

import threading
import time

import pytest
import redis

from tests.faults.faultkit import (
    BUDGET,
    Exchange,
    FaultApp,
    capture_store_log,
    check_invariants,
    figure,
)
from tests.support.servers import MakeServer, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.slow]

SEEDED = 150_000
RECOVERY = 2.0

_SEED = """
local now = ARGV[3]
for i = 1, tonumber(ARGV[1]) do
  local k = 'sess:{seed-' .. i .. '}'
  redis.call('HSET', k, 'user', ARGV[2], '$c', now)
  redis.call('PEXPIRE', k, 3600000)
end
return 1
"""


def server_state(url: str) -> str:
    """ "down", "loading" or "up", as a PING on a new connection sees it."""
    try:
        with redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.25) as probe:
            probe.ping()
    except redis.BusyLoadingError:
        return "loading"
    except (redis.ConnectionError, redis.TimeoutError):
        return "down"
    return "up"


def test_f7_requests_during_loading_are_503_then_2xx(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    capture_store_log(caplog)
    server = make_server(appendonly=True, appendfsync="everysec")
    with redis.Redis.from_url(server.url, socket_timeout=30) as admin:
        admin.eval(_SEED, 0, SEEDED, '"' + "x" * 100 + '"', int(time.time() * 1000))
        aof_bytes = sum(p.stat().st_size for p in (server.data_dir / "appendonlydir").iterdir())
    with FaultApp(server.url) as app:
        cookies = [app.new_session(user=f"u{i}") for i in range(3)]
        server.stop()  # SIGTERM: a clean stop; the restart replays the whole AOF

        states: list[str] = []

        def up_or_loading() -> bool:
            states.append(server_state(server.url))
            return states[-1] != "down"

        starter = threading.Thread(target=server.start, kwargs={"timeout": 30})
        restarted_at = time.monotonic()
        starter.start()
        try:
            wait_until(
                up_or_loading,
                10,
                message="the restarted server never answered",
            )
            during: list[Exchange] = []
            n = 0
            while starter.is_alive():  # start() returns once PING answers PONG
                assert n < 200, "LOADING never ended"
                path = "/get" if n % 2 else f"/set?n{n}=v{n}"
                during.append(app.request(path, cookies[n % len(cookies)]))
                n += 1
        finally:
            starter.join(30)
        answered = time.monotonic()
        loaded_after = answered - restarted_at
        states.append(server_state(server.url))
        first = app.request("/get", cookies[0])
        after = [first] + [app.request(f"/set?after{i}=1", c) for i, c in enumerate(cookies)]
        loading_seen = "loading" in states or any(e.status == 503 for e in during)
        figure(
            "F7",
            seeded_sessions=SEEDED,
            aof_mb=f"{aof_bytes / 2**20:.1f}",
            loading_seen=loading_seen,
            seconds_loading=loaded_after,
            requests_during=len(during),
            served_503=sum(e.status == 503 for e in during),
            served_2xx=sum(e.ok for e in during),
            max_503_seconds=max((e.seconds for e in during if e.status == 503), default=0.0),
            first_after_status=first.status,
            first_after_seconds=first.seconds,
        )
        for exchange in during:
            assert exchange.status in (200, 503), f"{exchange.path}: {exchange.status}"
            assert exchange.seconds < BUDGET
        assert loading_seen, "LOADING was not observed: seed more sessions"
        # Once loaded, the server serves: no 503 after the first 2xx.
        statuses = [e.status for e in during]
        if 200 in statuses:
            assert set(statuses[statuses.index(200) :]) == {200}, statuses
        assert all(e.ok for e in after), [e.status for e in after]
        assert first.seconds < RECOVERY
        for i, cookie in enumerate(cookies):
            assert app.read(cookie)["user"] == f"u{i}"
    check_invariants(app, [server], caplog=caplog)
    # Stricter than I-4 alone: nothing logged when the app never saw the outage.
    levels = [r.levelname for r in caplog.records if r.name == "redis_sessions"]
    assert levels == (["WARNING", "INFO"] if app.unavailable else []), levels
