"""S1-S7: the app on a Sentinel group (RELIABILITY.md B2), each case on a fresh group.

The app (`FaultApp`, asyncio store) connects with a ``redis+sentinel://`` URL. A loop of
sequential ``/set`` requests spreads distinct fields over a few sessions and remembers every
acknowledged (2xx) write; the fault is injected from the test thread between two requests.
Afterwards every session is read back through the app: an acknowledged write that is missing is
lost; a session whose surviving fields are not a prefix of its acknowledged writes went back in
time. The Sentinels use ``down-after-milliseconds 1000`` and ``failover-timeout 5000``.
"""

from __future__ import annotations

import random
import select
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from redis_sessions.server import LocalServer
from tests.faults.faultkit import (
    BUDGET,
    FAULT_OPTIONS,
    Exchange,
    FaultApp,
    capture_store_log,
    check_invariants,
    figure,
    raw_send,
    sessions_without_ttl,
    store_log,
)
from tests.support.sentinelkit import SentinelGroup
from tests.support.servers import wait_until

pytestmark = [pytest.mark.sentinel, pytest.mark.faults]

USERS = 4
RECOVERY = 15.0  # seconds from the fault to the first 2xx, without restarting the app
LAG_WINDOW = 1.0  # asynchronous replication: loss allowed for writes acked this long before
GRACEFUL = 5.0  # SENTINEL FAILOVER: seconds to the first 2xx on the new master
REPLICAS_BACK = 5.0  # S5: seconds from the replicas' restart to the first accepted write
HANG = 5  # S4: seconds of DEBUG SLEEP on the master


@dataclass
class Audit:
    """What reading every session back found."""

    lost: list[tuple[int, str, float]]  # (user, field, acked at) acknowledged but missing
    unexpected: list[tuple[int, str]]  # fields nobody wrote, or with a value nobody wrote
    went_back: list[int]  # users whose surviving writes are not a prefix of the acked ones
    refused_applied: int  # writes answered 503 that are present all the same


@dataclass
class Writes:
    """Distinct ``k<i>=v<i>`` writes spread over `cookies`, in order, and their outcome."""

    app: FaultApp
    cookies: list[str]
    count: int = 0
    acked: dict[int, list[tuple[str, str, float]]] = field(default_factory=dict)
    attempted: dict[tuple[int, str], str] = field(default_factory=dict)
    refused: set[tuple[int, str]] = field(default_factory=set)

    @classmethod
    def start(cls, app: FaultApp) -> Writes:
        """Create `USERS` sessions (each with its ``u`` field acknowledged) and return the loop."""
        writes = cls(app, [])
        for user in range(USERS):
            writes.cookies.append(app.new_session(u=f"u{user}"))
            writes.attempted[(user, "u")] = f"u{user}"
            writes.acked[user] = [("u", f"u{user}", time.monotonic())]
        return writes

    def write(self) -> Exchange:
        """Send the next write; remember it as acknowledged on a 2xx, as refused otherwise."""
        i = self.count
        self.count += 1
        user, key, value = i % len(self.cookies), f"k{i}", f"v{i}"
        self.attempted[(user, key)] = value
        exchange = self.app.request(f"/set?{key}={value}", self.cookies[user])
        if exchange.ok:
            self.acked[user].append((key, value, exchange.started + exchange.seconds))
        else:
            self.refused.add((user, key))
        return exchange

    def until(self, done: Callable[[Exchange], bool], timeout: float, message: str) -> Exchange:
        """Write until `done(exchange)` holds (polled, no sleep) -> that exchange."""
        last: list[Exchange] = []

        def check() -> bool:
            last[:] = [self.write()]
            return done(last[0])

        wait_until(check, timeout, interval=0, message=message)
        return last[0]

    def audit(self) -> Audit:
        """Read every session back through the app and compare with what was written."""
        lost: list[tuple[int, str, float]] = []
        unexpected: list[tuple[int, str]] = []
        went_back: list[int] = []
        refused_applied = 0
        for user, cookie in enumerate(self.cookies):
            data = self.app.read(cookie)
            survived = [data.get(key) == value for key, value, _ in self.acked[user]]
            lost += [
                (user, key, at)
                for (key, value, at), ok in zip(self.acked[user], survived)
                if not ok
            ]
            # Replication applies writes in order: a gap before a surviving write means the
            # session came back older than a state some request already saw.
            if False in survived and True in survived[survived.index(False) :]:
                went_back.append(user)
            for key, value in data.items():
                if self.attempted.get((user, key)) != value:
                    unexpected.append((user, key))
                elif (user, key) in self.refused:
                    refused_applied += 1
        return Audit(lost, unexpected, went_back, refused_applied)


@pytest.fixture
def group(tmp_path: Any) -> Iterator[SentinelGroup]:
    """A fresh, started Sentinel group of this test's own (the cases kill and fail over)."""
    sentinel_group = SentinelGroup(tmp_path / "group")
    sentinel_group.start()
    try:
        yield sentinel_group
    finally:
        sentinel_group.stop()


def library_connections(server: LocalServer) -> int:
    """Connections the server holds from clients named like the library's."""
    with redis.Redis(host=server.host, port=server.port, socket_timeout=5) as client:
        return sum(1 for c in client.client_list() if c.get("name") == "redis-sessions")


def check_group_invariants(
    app: FaultApp, group: SentinelGroup, caplog: pytest.LogCaptureFixture, outages: int = 1
) -> None:
    """`check_invariants` for a group: I-2, I-3, I-4 there (every server and Sentinel port is a
    leak), I-1 and I-5 here, because each Sentinel holds two connections on every server,
    which faultkit's ``connected_clients`` bound does not allow for: I-5 counts the library's
    own (named) connections instead."""
    ports = [s.port for s in group.servers] + group.sentinel_ports
    check_invariants(app, [], extra_ports=ports, caplog=caplog, outages=outages)
    limit = FAULT_OPTIONS.max_connections or 0
    for server in group.servers:
        if not server.is_running:
            continue
        if group.role(server) == "master":
            with redis.Redis(host=server.host, port=server.port, socket_timeout=10) as client:
                assert sessions_without_ttl(client) == 0, "I-1: a session key has no TTL"
        held = library_connections(server)
        assert held <= limit, f"I-5: {held} library connections on {server.port} > {limit}"
        if app.closed:

            def released(s: LocalServer = server) -> bool:
                return library_connections(s) == 0

            wait_until(
                released,
                2,
                message=f"I-5: library connections left open on {server.port}",
            )


def assert_clean_failures(exchanges: list[Exchange]) -> None:
    """Every request answered 2xx or 503, within the budget."""
    for e in exchanges:
        assert e.ok or e.status == 503, f"{e.path} answered {e.status}: {e.body!r}"
        assert e.seconds < BUDGET, f"{e.path} took {e.seconds:.2f} s"


def warm_up(writes: Writes) -> int:
    """Between 50 and 150 acknowledged writes before the fault (random, seed printed)."""
    seed = random.randrange(2**32)
    for _ in range(random.Random(seed).randint(50, 150)):
        assert writes.write().ok, "a write failed before any fault"
    return seed


def test_s1_kill_master_recovers_within_15s_losing_at_most_the_last_second(
    group: SentinelGroup, caplog: pytest.LogCaptureFixture
) -> None:
    capture_store_log(caplog)
    with FaultApp(group.url()) as app:
        writes = Writes.start(app)
        seed = warm_up(writes)
        first = len(app.log)
        killed_at = time.monotonic()
        killed = group.kill_master()
        ok = writes.until(lambda e: e.ok, RECOVERY, "no 2xx within 15 s of killing the master")
        recovery = ok.started + ok.seconds - killed_at
        window = app.log[first:-1]
        assert window, "the app never noticed the master was gone"
        assert all(e.status == 503 for e in window), [e.status for e in window]
        assert_clean_failures(window)
        assert group.master() is not killed
        for _ in range(10):
            assert writes.write().ok, "a write failed after the failover"
        audit = writes.audit()
        acked = sum(len(v) for v in writes.acked.values())
        recent = sum(
            1
            for v in writes.acked.values()
            for _, _, at in v
            if killed_at - LAG_WINDOW <= at <= killed_at
        )
        figure(
            "S1",
            seconds_to_recovery=recovery,
            acknowledged_lost=len(audit.lost),
            acknowledged=acked,
            acknowledged_last_1s_before_kill=recent,
            requests_503=len(window),
            max_503_seconds=max(e.seconds for e in window),
            seed=seed,
        )
        for user, key, at in audit.lost:
            print(f"S1 lost: user {user} {key}, acked {killed_at - at:.3f} s before the kill")
        assert audit.unexpected == [], f"fields nobody wrote: {audit.unexpected}"
        assert audit.went_back == [], f"sessions older than an acknowledged state: {audit}"
        early = [item for item in audit.lost if item[2] < killed_at - LAG_WINDOW]
        assert early == [], f"lost writes acknowledged > {LAG_WINDOW} s before the kill: {early}"
    check_group_invariants(app, group, caplog)


def test_s2_wait_for_both_replicas_loses_no_acknowledged_write(
    group: SentinelGroup, caplog: pytest.LogCaptureFixture
) -> None:
    capture_store_log(caplog)
    options = {"wait_replicas": 2, "wait_timeout": 0.1}
    with FaultApp(group.url(), store_options=options) as app:
        writes = Writes.start(app)
        seed = warm_up(writes)
        first = len(app.log)
        killed_at = time.monotonic()
        killed = group.kill_master()

        def promoted(_: Exchange) -> bool:
            address = group.master_address()
            return address is not None and address[1] != killed.port

        # Until the old master is back as a replica, no save can reach 2 replicas: all 503.
        writes.until(promoted, RECOVERY, "no failover within 15 s")
        failover = time.monotonic() - killed_at
        # Reads need no replica: they are served as soon as the app has asked the Sentinels
        # again (its pools do at most every 0.5 s; until then it may still dial the dead one).
        wait_until(
            lambda: app.request("/get", writes.cookies[0]).ok,
            3.0,
            message="no read served with one replica left within 3 s",
        )
        restarted_at = time.monotonic()
        group.restart(killed)
        ok = writes.until(lambda e: e.ok, RECOVERY, "no 2xx once both replicas were back")
        recovery = ok.started + ok.seconds - restarted_at
        window = [e for e in app.log[first:-1] if e.path.startswith("/set")]
        assert all(e.status == 503 for e in window), [e.status for e in window]
        assert_clean_failures(window)
        for _ in range(10):
            assert writes.write().ok, "a write failed after recovery"
        audit = writes.audit()
        acked = sum(len(v) for v in writes.acked.values())
        figure(
            "S2",
            wait_replicas=2,
            wait_timeout_ms=100,
            acknowledged_lost=len(audit.lost),
            acknowledged=acked,
            seconds_to_failover=failover,
            seconds_to_recovery_after_restart=recovery,
            requests_503=len(window),
            refused_but_applied=audit.refused_applied,
            seed=seed,
        )
        assert audit.lost == [], f"acknowledged writes lost with WAIT 2: {audit.lost}"
        assert audit.unexpected == [] and audit.went_back == [], audit
    # The master going away, then saves short of replicas: two outages.
    check_group_invariants(app, group, caplog, outages=2)


def graceful_failover(
    group: SentinelGroup, app: FaultApp, timeout: float, connections_left: bool
) -> tuple[Writes, int, list[Exchange], float, float]:
    """Warm up, ``SENTINEL FAILOVER``, write until a save lands on the new master (and, with
    `connections_left`, the app holds no connection to the old one) within `timeout`, then 10
    more saves that must all succeed. Returns (writes, seed, the exchanges since the command,
    when it was sent, when the first save on the new master was acknowledged)."""
    writes = Writes.start(app)
    seed = warm_up(writes)
    first = len(app.log)
    old = group.master()
    with group.sentinels[0].client(timeout=5) as sentinel:
        assert sentinel.execute_command("SENTINEL", "FAILOVER", group.service)
    asked_at = time.monotonic()

    def moved(exchange: Exchange) -> bool:
        address = group.master_address()
        return (
            exchange.ok
            and address is not None
            and address[1] != old.port
            and (not connections_left or library_connections(old) == 0)
        )

    ok = writes.until(moved, timeout, f"no save on the new master {timeout} s after FAILOVER")
    for _ in range(10):
        assert writes.write().ok, "a write failed after the failover"
    window = app.log[first:]
    assert_clean_failures(window)
    return writes, seed, window, asked_at, ok.started + ok.seconds


def test_s3_graceful_failover_moves_writes_within_5s_and_no_readonly_reaches_the_app(
    group: SentinelGroup, caplog: pytest.LogCaptureFixture
) -> None:
    capture_store_log(caplog)
    with FaultApp(group.url()) as app:
        # The old master stays a master (and keeps every connection) until a Sentinel turns
        # it into a replica, seconds later: only the client can notice the switch sooner.
        writes, seed, window, asked_at, moved_at = graceful_failover(
            group, app, GRACEFUL, connections_left=True
        )
        # The new master's data is what survives: the old one resyncs from it once a Sentinel
        # turns it into a replica, discarding whatever it accepted after the promotion.
        audit = writes.audit()
        figure(
            "S3",
            seconds_to_new_master_writes=moved_at - asked_at,
            requests_503=sum(1 for e in window if not e.ok),
            acknowledged_lost=len(audit.lost),
            sessions_with_a_gap=len(audit.went_back),
            seed=seed,
        )
        for user, key, at in audit.lost:
            print(f"S3 lost: user {user} {key}, acknowledged {at - asked_at:.3f} s after FAILOVER")
        readonly = [r.getMessage() for r in store_log(caplog) if "READONLY" in r.getMessage()]
        assert readonly == [], f"READONLY reached the store: {readonly}"
        assert audit.unexpected == [], f"fields nobody wrote: {audit.unexpected}"
        # Without WAIT, the writes the old master acknowledged between the promotion and the
        # app's switch are lost (Sentinel's replication is asynchronous); none other may be.
        outside = [item for item in audit.lost if not asked_at <= item[2] <= moved_at]
        assert outside == [], f"lost writes acknowledged outside the switch: {outside}"
    check_group_invariants(app, group, caplog)


def test_s3_graceful_failover_with_wait_replicas_loses_nothing(
    group: SentinelGroup, caplog: pytest.LogCaptureFixture
) -> None:
    """The writes S3 loses are acknowledged by the old master after the promotion: with WAIT 2
    the promoted replica no longer acknowledges them, so they answer 503 instead."""
    capture_store_log(caplog)
    options = {"wait_replicas": 2, "wait_timeout": 0.1}
    with FaultApp(group.url(), store_options=options) as app:
        # Saves need both replicas: they succeed once both follow the new master.
        writes, seed, window, asked_at, moved_at = graceful_failover(
            group, app, RECOVERY, connections_left=False
        )
        audit = writes.audit()
        figure(
            "S3-wait",
            wait_replicas=2,
            seconds_to_new_master_writes=moved_at - asked_at,
            requests_503=sum(1 for e in window if not e.ok),
            acknowledged_lost=len(audit.lost),
            refused_but_applied=audit.refused_applied,
            seed=seed,
        )
        assert audit.lost == [], f"acknowledged writes lost with WAIT 2: {audit.lost}"
        assert audit.unexpected == [] and audit.went_back == [], audit
    check_group_invariants(app, group, caplog)


def test_s4_hung_master_is_replaced_and_accepts_no_write_when_it_wakes(
    group: SentinelGroup, caplog: pytest.LogCaptureFixture
) -> None:
    capture_store_log(caplog)
    with FaultApp(group.url()) as app:
        writes = Writes.start(app)
        seed = warm_up(writes)
        first = len(app.log)
        old = group.master()
        sock = raw_send(old, "DEBUG", "SLEEP", str(HANG))
        hung_at = time.monotonic()
        try:
            ok = writes.until(lambda e: e.ok, RECOVERY, "no 2xx within 15 s of the hang")
            recovery = ok.started + ok.seconds - hung_at
            window = app.log[first:-1]
            assert all(e.status == 503 for e in window), [e.status for e in window]
            assert_clean_failures(window)

            def awake(exchange: Exchange) -> bool:
                assert exchange.ok, f"a write failed after the failover: {exchange.status}"
                return bool(select.select([sock], [], [], 0)[0])

            writes.until(awake, RECOVERY, "the old master never woke up")
            assert sock.recv(64).startswith(b"+OK")
        finally:
            sock.close()
        # It is still a master until a Sentinel turns it into a replica (seconds later):
        # meanwhile the app writes on, and none of its connections may go to it.
        held: list[int] = []

        def demoted(exchange: Exchange) -> bool:
            assert exchange.ok, f"a write failed after the failover: {exchange.status}"
            held.append(library_connections(old))
            return group.role(old) == "slave"

        writes.until(demoted, RECOVERY, "the woken master never became a replica")
        group.wait_replicas_synced()
        audit = writes.audit()
        figure(
            "S4",
            hang_seconds=HANG,
            seconds_to_recovery=recovery,
            requests_503=len(window),
            max_503_seconds=max(e.seconds for e in window),
            writes_while_old_master_awake=len(held),
            acknowledged_lost=len(audit.lost),
            refused_but_applied=audit.refused_applied,
            seed=seed,
        )
        assert max(held) == 0, f"the app held connections to the woken old master: {held}"
        assert audit.unexpected == [] and audit.went_back == [], audit
        late = [item for item in audit.lost if item[2] > hung_at]
        assert late == [], f"writes acknowledged after the failover were lost: {late}"
        early = [item for item in audit.lost if item[2] < hung_at - LAG_WINDOW]
        assert early == [], f"lost writes acknowledged > {LAG_WINDOW} s before the hang: {early}"
    check_group_invariants(app, group, caplog)


def test_s5_noreplicas_gives_503_on_writes_while_reads_work(
    group: SentinelGroup, caplog: pytest.LogCaptureFixture
) -> None:
    capture_store_log(caplog)
    with group.admin() as admin:
        admin.config_set("min-replicas-to-write", 1)
    with FaultApp(group.url()) as app:
        writes = Writes.start(app)
        seed = warm_up(writes)
        replicas = group.replicas()
        for replica in replicas:
            replica.kill()
        first = len(app.log)
        for user in range(USERS):
            refused = writes.write()
            assert refused.status == 503, f"a write without replicas answered {refused.status}"
            data = app.read(writes.cookies[user])
            assert data["u"] == f"u{user}", data
        assert_clean_failures(app.log[first:])
        restarted_at = time.monotonic()
        for replica in replicas:
            group.restart(replica)
        ok = writes.until(lambda e: e.ok, REPLICAS_BACK, "writes refused 5 s after the restart")
        recovery = ok.started + ok.seconds - restarted_at
        assert_clean_failures(app.log[first:])
        audit = writes.audit()
        figure(
            "S5",
            writes_503_without_replicas=USERS,
            writes_503_after_restart=len(writes.refused) - USERS,
            seconds_to_recovery=recovery,
            acknowledged_lost=len(audit.lost),
            seed=seed,
        )
        assert audit.lost == [] and audit.unexpected == [] and audit.went_back == [], audit
        assert audit.refused_applied == 0, "a write refused with NOREPLICAS was applied"
    messages = [r.getMessage() for r in store_log(caplog)]
    assert any("NOREPLICAS" in m for m in messages), messages
    check_group_invariants(app, group, caplog)


def test_s6_no_failover_without_a_sentinel_majority_then_recovery(
    group: SentinelGroup, caplog: pytest.LogCaptureFixture
) -> None:
    capture_store_log(caplog)
    with FaultApp(group.url()) as app:
        writes = Writes.start(app)
        seed = warm_up(writes)
        group.kill_sentinel(1)
        group.kill_sentinel(2)
        killed_at = time.monotonic()
        killed = group.kill_master()
        replicas = [s for s in group.servers if s is not killed]
        first = len(app.log)

        def master_down() -> bool:
            state = group.sentinels[0].master_state() or {}
            return "s_down" in state.get("flags", "")

        wait_until(master_down, 5, message="the last Sentinel never saw the master down")
        # A majority would have failed over long before (S1: about 2.5 s after the kill).
        quiet = 5 * group.down_after_ms / 1000
        writes.until(
            lambda e: time.monotonic() - killed_at >= quiet,
            quiet + BUDGET,
            "the write loop stalled",
        )
        window = app.log[first:]
        assert all(e.status == 503 for e in window), [e.status for e in window]
        assert_clean_failures(window)
        assert [group.role(s) for s in replicas] == ["slave", "slave"], "a minority failed over"
        assert group.sentinels[0].master_address() == ("127.0.0.1", killed.port)
        warnings = [r.getMessage() for r in store_log(caplog) if r.levelname == "WARNING"]
        assert len(warnings) == 1 and "sentinel" in warnings[0].lower(), (
            f"the outage log does not say the Sentinels know no master: {warnings}"
        )
        restarted_at = time.monotonic()
        group.start_sentinel(1)
        group.start_sentinel(2)
        ok = writes.until(lambda e: e.ok, RECOVERY, "no 2xx within 15 s of the Sentinels' return")
        recovery = ok.started + ok.seconds - restarted_at
        assert_clean_failures(app.log[first:])
        audit = writes.audit()
        figure(
            "S6",
            no_failover_checked_seconds=restarted_at - killed_at,
            requests_503=len(app.log[first:-1]),
            seconds_to_recovery_after_sentinels=recovery,
            acknowledged_lost=len(audit.lost),
            seed=seed,
        )
        assert audit.unexpected == [] and audit.went_back == [], audit
        early = [item for item in audit.lost if item[2] < killed_at - LAG_WINDOW]
        assert early == [], f"lost writes acknowledged > {LAG_WINDOW} s before the kill: {early}"
    check_group_invariants(app, group, caplog)


def test_s7_app_starts_with_every_sentinel_down_and_recovers_when_they_come(
    group: SentinelGroup, caplog: pytest.LogCaptureFixture
) -> None:
    capture_store_log(caplog)
    for i in range(3):
        group.kill_sentinel(i)
    with FaultApp(group.url()) as app:
        # Writes: a request without a session cookie and nothing to save never asks Redis.
        down = [app.request(f"/set?n={n}") for n in range(3)]
        assert [e.status for e in down] == [503, 503, 503]
        assert_clean_failures(down)
        warnings = [r.getMessage() for r in store_log(caplog) if r.levelname == "WARNING"]
        assert len(warnings) == 1 and "sentinel" in warnings[0].lower(), (
            f"the outage log does not say the Sentinels are unreachable: {warnings}"
        )
        started_at = time.monotonic()
        for i in range(3):
            group.start_sentinel(i)
        wait_until(
            lambda: app.request("/set?a=1").ok,
            RECOVERY,
            interval=0,
            message="no 2xx within 15 s of the Sentinels' start",
        )
        ok = app.log[-1]
        recovery = ok.started + ok.seconds - started_at
        assert ok.cookie is not None
        assert app.read(ok.cookie) == {"a": "1"}
        assert_clean_failures(app.log)
        figure(
            "S7",
            requests_503=len(app.unavailable),
            seconds_to_recovery=recovery,
            max_503_seconds=max(e.seconds for e in app.unavailable),
        )
    check_group_invariants(app, group, caplog)


def test_shared_group_serves_sessions_through_the_sentinel_url(
    sentinel_group: SentinelGroup,
) -> None:
    # The session-wide group (non-destructive users only): the URL reaches its master.
    sentinel_group.flush()  # other tests leave their sessions behind
    with FaultApp(sentinel_group.url()) as app:
        cookie = app.new_session(a="1")
        assert app.read(cookie) == {"a": "1"}
    with sentinel_group.admin() as admin:
        assert admin.dbsize() == 1
    sentinel_group.flush()
    with sentinel_group.admin() as admin:
        assert admin.dbsize() == 0
