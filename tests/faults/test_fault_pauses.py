"""F5: a server that stops answering for a while without dying.

``DEBUG SLEEP 2`` blocks the whole server (the way a long-running command or a fork stall looks):
every request during it is a clean 503 within the budget, or succeeds once the server is back,
never a 500. ``CLIENT PAUSE 2000 WRITE`` (what a failover does first) must keep reads working,
while writes are a 503 within the budget or succeed once unpaused. A write whose reply timed out
may still be applied when the server wakes up; the session's fields must nevertheless be exactly
what the requests set, each once.
"""

from __future__ import annotations

import select
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
    raw_send,
)
from tests.support.servers import MakeServer

pytestmark = [pytest.mark.faults, pytest.mark.slow]

SLEEP = 2.0


def audit(data: dict[str, str], acked: dict[str, str], failed: dict[str, str]) -> list[str]:
    """Problems in `data`: acknowledged fields missing/changed, or fields nobody wrote."""
    problems = [f"lost {k}" for k, v in acked.items() if data.get(k) != v]
    problems += [
        f"unexpected {k}={v!r}" for k, v in data.items() if acked.get(k, failed.get(k)) != v
    ]
    return problems


def assert_in_budget(exchange: Exchange) -> None:
    assert exchange.status in (200, 503), f"{exchange.path}: {exchange.status} {exchange.body!r}"
    assert exchange.seconds < BUDGET, f"{exchange.path} took {exchange.seconds:.2f} s"


def test_f5_debug_sleep_gives_503_in_budget_or_success_after_never_500(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    capture_store_log(caplog)
    server = make_server(appendonly=False, extra_args=["--enable-debug-command", "yes"])
    with FaultApp(server.url) as app:
        cookie = app.new_session(a="0")
        acked: dict[str, str] = {"a": "0"}
        failed: dict[str, str] = {}
        assert app.read(cookie) == acked  # the app holds a live connection now
        sock = raw_send(server, "DEBUG", "SLEEP", str(int(SLEEP)))
        slept_at = time.monotonic()
        during: list[Exchange] = []
        try:
            # Alternate writes and reads until the server answers DEBUG SLEEP (it woke up).
            while not select.select([sock], [], [], 0)[0]:
                assert len(during) < 20, "DEBUG SLEEP never ended"
                n = len(during)
                path = f"/set?w{n}=x{n}" if n % 2 == 0 else "/get"
                exchange = app.request(path, cookie)
                assert_in_budget(exchange)
                if path != "/get":
                    (acked if exchange.ok else failed)[f"w{n}"] = f"x{n}"
                during.append(exchange)
            woke_after = time.monotonic() - slept_at
            assert sock.recv(64).startswith(b"+OK")
        finally:
            sock.close()
        after = [app.request("/set?after=1", cookie), app.request("/get", cookie)]
        assert all(e.ok for e in after), [e.status for e in after]
        acked["after"] = "1"
        data = app.read(cookie)
        applied_anyway = sum(1 for k in failed if k in data)
        figure(
            "F5-sleep",
            requests_during=len(during),
            served_503=sum(1 for e in during if e.status == 503),
            served_2xx=sum(1 for e in during if e.ok),
            max_seconds=max(e.seconds for e in during),
            slept_seconds=woke_after,
            failed_writes_applied_anyway=applied_anyway,
            first_after_seconds=after[0].seconds,
        )
        assert audit(data, acked, failed) == []
    check_invariants(app, [server], caplog=caplog)


def test_f5_client_pause_write_keeps_reads_working_and_writes_in_budget(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    capture_store_log(caplog)
    server = make_server(appendonly=False)
    with FaultApp(server.url) as app, redis.Redis.from_url(server.url, socket_timeout=10) as admin:
        cookie = app.new_session(a="0")
        acked: dict[str, str] = {"a": "0"}
        failed: dict[str, str] = {}
        assert app.read(cookie) == acked
        admin.client_pause(int(SLEEP * 1000), all=False)
        paused_at = time.monotonic()
        reads = [app.request("/get", cookie)]
        write = app.request("/set?b=1", cookie)
        (acked if write.ok else failed)["b"] = "1"
        reads.append(app.request("/get", cookie))
        in_pause = [e for e in reads if e.started + e.seconds < paused_at + SLEEP]
        # A write command blocks until the pause is over: the fault's own duration.
        admin.set("fault-suite:probe", "1", px=1000)
        after = app.request("/set?c=2", cookie)
        assert after.ok, after.status
        acked["c"] = "2"
        data = app.read(cookie)
        figure(
            "F5-pause",
            read_statuses="/".join(str(e.status) for e in reads),
            read_seconds="/".join(f"{e.seconds:.3f}" for e in reads),
            reads_answered_in_pause=len(in_pause),
            write_status=write.status,
            write_seconds=write.seconds,
            failed_write_applied_anyway=int("b" in failed and "b" in data),
        )
        for exchange in (*reads, write):
            assert_in_budget(exchange)
        assert audit(data, acked, failed) == []
        # Reads must not depend on write permission: CLIENT PAUSE WRITE (the first step of a
        # failover) blocks EVAL/EVALSHA of scripts not declared `no-writes`.
        assert [e.status for e in reads] == [200, 200], (
            "reads answered 503 during CLIENT PAUSE WRITE: the load is a script without the "
            "no-writes flag, which the pause blocks"
        )
        assert all(e.seconds < 0.5 for e in reads), [e.seconds for e in reads]
    check_invariants(app, [server], caplog=caplog)
