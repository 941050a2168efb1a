"""F8: a network partition between the app and Redis (fault proxy in blackhole mode).

For 2 s the proxy accepts connections and swallows every byte, as a dead route does: each request
is a clean 503 within the budget. Then the route is back: requests are 2xx again at once, with no
error from a socket left stale by the partition (timed-out connections are dropped, idle ones are
checked by the health-check PING).
"""

from __future__ import annotations

import time

import pytest

from tests.faults.faultkit import (
    BUDGET,
    Exchange,
    FaultApp,
    capture_store_log,
    check_invariants,
    figure,
)
from tests.support.faultproxy import FaultProxy
from tests.support.servers import MakeServer

pytestmark = [pytest.mark.faults, pytest.mark.slow]

BLACKHOLE = 2.0
RECOVERY = 2.0


def test_f8_blackhole_gives_503_in_budget_then_recovers_without_stale_sockets(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    capture_store_log(caplog)
    server = make_server(appendonly=False)
    with FaultProxy(server.host, server.port) as proxy, FaultApp(proxy.url) as app:
        cookie = app.new_session(a="0")
        acked = {"a": "0"}
        for i in range(5):
            assert app.request(f"/set?b{i}={i}", cookie).ok
            acked[f"b{i}"] = str(i)

        proxy.mode = "blackhole"
        started = time.monotonic()
        during: list[Exchange] = []
        while time.monotonic() - started < BLACKHOLE:
            n = len(during)
            during.append(app.request(f"/set?w{n}={n}" if n % 2 == 0 else "/get", cookie))
        proxy.mode = "pass"
        passed_at = time.monotonic()

        after = []
        for i in range(10):
            after.append(app.request(f"/set?c{i}={i}" if i % 2 == 0 else "/get", cookie))
            if i % 2 == 0 and after[-1].ok:
                acked[f"c{i}"] = str(i)
        recovery = after[0].started + after[0].seconds - passed_at
        data = app.read(cookie)
        figure(
            "F8",
            blackhole_seconds=BLACKHOLE,
            requests_during=len(during),
            served_503=sum(e.status == 503 for e in during),
            max_503_seconds=max(e.seconds for e in during),
            seconds_to_recovery=recovery,
            errors_after_recovery=sum(not e.ok for e in after),
        )
        for exchange in during:
            assert exchange.status == 503, f"{exchange.path} in the partition: {exchange.status}"
            assert exchange.seconds < BUDGET, f"{exchange.path} took {exchange.seconds:.2f} s"
        assert [e.status for e in after] == [200] * len(after), "errors after recovery"
        assert recovery < RECOVERY
        # Nothing sent during the partition reached Redis; everything acknowledged did.
        assert data == acked
    check_invariants(app, [server], extra_ports=[proxy.port], caplog=caplog)
