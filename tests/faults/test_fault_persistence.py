"""F1, F2: ``kill -9`` under a write loop, restart on the same directory (AOF replay).

A client loop sends ``/set`` requests with distinct fields and values over a few sessions and
records every acknowledged (2xx) write. After N of them (random, 50-150) the server is killed from
the test thread between two requests; requests during the downtime must be clean 503s within the
budget; after the restart the first 2xx comes within 2 s of the server answering PING, without
restarting the app; then every session is read back through the app.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from tests.faults.faultkit import (
    BUDGET,
    Exchange,
    FaultApp,
    capture_store_log,
    check_invariants,
    figure,
)
from tests.support.servers import MakeServer, wait_until

pytestmark = pytest.mark.faults

USERS = 4
RECOVERY = 2.0  # seconds from PING answered to the first 2xx
WINDOW = 2.0  # everysec: loss allowed for writes acknowledged this long before the kill


@dataclass
class WriteLoop:
    """Distinct ``k<i>=v<i>`` writes spread over `cookies`; remembers what was acknowledged."""

    app: FaultApp
    cookies: list[str]
    count: int = 0
    acked: dict[tuple[int, str], tuple[str, float]] = field(default_factory=dict)
    attempted: dict[tuple[int, str], str] = field(default_factory=dict)

    def write(self) -> Exchange:
        i = self.count
        self.count += 1
        user, key, value = i % len(self.cookies), f"k{i}", f"v{i}"
        self.attempted[(user, key)] = value
        exchange = self.app.request(f"/set?{key}={value}", self.cookies[user])
        if exchange.ok:
            self.acked[(user, key)] = (value, exchange.started + exchange.seconds)
        return exchange

    def audit(self) -> tuple[list[tuple[int, str, float]], list[tuple[int, str]]]:
        """(lost acknowledged writes with their ack time, fields nobody wrote or wrong values)."""
        lost: list[tuple[int, str, float]] = []
        unexpected: list[tuple[int, str]] = []
        for user, cookie in enumerate(self.cookies):
            data = self.app.read(cookie)
            for (owner, key), (value, acked_at) in self.acked.items():
                if owner == user and data.get(key) != value:
                    lost.append((user, key, acked_at))
            for key, value in data.items():
                if self.attempted.get((user, key)) != value:
                    unexpected.append((user, key))
        return lost, unexpected


def kill_restart_case(
    case: str,
    appendfsync: Literal["always", "everysec"],
    make_server: MakeServer,
    caplog: pytest.LogCaptureFixture,
) -> int:
    """Run the F1/F2 scenario; return the number of acknowledged writes lost."""
    capture_store_log(caplog)
    server = make_server(appendonly=True, appendfsync=appendfsync)
    seed = random.randrange(2**32)
    target = random.Random(seed).randint(50, 150)
    with FaultApp(server.url) as app:
        cookies = [app.new_session(u=f"u{user}") for user in range(USERS)]
        loop = WriteLoop(app, cookies)
        for user in range(USERS):
            loop.attempted[(user, "u")] = f"u{user}"
            loop.acked[(user, "u")] = (f"u{user}", 0.0)
        while loop.count < target:
            assert loop.write().ok, "a write failed before any fault"
        killed_at = time.monotonic()
        server.kill()

        down: list[Any] = [loop.write(), app.request("/get", cookies[0]), loop.write()]
        for exchange in down:
            assert exchange.status == 503, f"{exchange.path} during the downtime: {exchange.status}"
            assert exchange.seconds < BUDGET, f"{exchange.path} took {exchange.seconds:.2f} s"

        server.restart()
        answered = time.monotonic()
        failures_after_ping = 0

        def recovered() -> bool:
            nonlocal failures_after_ping
            if loop.write().ok:
                return True
            failures_after_ping += 1
            return False

        wait_until(recovered, RECOVERY, interval=0, message="no 2xx within 2 s of PING")
        first_ok = app.log[-1]
        recovery = first_ok.started + first_ok.seconds - answered
        assert recovery < RECOVERY
        for _ in range(10):
            assert loop.write().ok, "a write failed after recovery"

        lost, unexpected = loop.audit()
        recent = sum(
            1 for _, acked_at in loop.acked.values() if killed_at - WINDOW <= acked_at <= killed_at
        )
        figure(
            case,
            appendfsync=appendfsync,
            acknowledged_lost=len(lost),
            acknowledged=len(loop.acked),
            acknowledged_last_2s_before_kill=recent,
            kill_after=target,
            requests=len(app.log),
            downtime_503=len(down),
            failures_after_ping=failures_after_ping,
            seconds_to_recovery=recovery,
            max_503_seconds=max(e.seconds for e in down),
            seed=seed,
        )
        assert unexpected == [], f"fields nobody wrote (or wrong values): {unexpected}"
        if appendfsync == "always":
            assert lost == [], f"acknowledged writes lost with appendfsync always: {lost}"
        else:
            early = [item for item in lost if item[2] < killed_at - WINDOW]
            assert early == [], f"lost writes acknowledged > {WINDOW} s before the kill: {early}"
            assert len(lost) <= recent
    check_invariants(app, [server], caplog=caplog)
    return len(lost)


def test_f1_kill9_with_aof_always_loses_no_acknowledged_write(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    assert kill_restart_case("F1", "always", make_server, caplog) == 0


def test_f2_kill9_with_aof_everysec_loses_only_the_last_second(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A plain kill -9 leaves the written AOF in the page cache, so 0 is expected here; only a
    # machine crash can lose the last second. The bound checked is the documented one.
    kill_restart_case("F2", "everysec", make_server, caplog)
