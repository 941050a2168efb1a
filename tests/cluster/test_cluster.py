"""C1-C7: the session store on a 6-node Cluster of real processes (RELIABILITY.md B3).

C1 and C7 leave the cluster as they found it and use the session's `redis_cluster`; the
others kill, fail over or reshard, on this module's own cluster (`cluster`), which is brought
back to health (stopped nodes restarted) and emptied before each test, or rebuilt when that
fails. Requests go through `ClusterApp`: the fault suite's app (`faultkit.FaultApp`, the
fault-test client settings, every exchange recorded) on a ``redis+cluster://`` URL, plus a
``/login`` route that regenerates the session and a locked ``/incr`` route (its writes carry a
nonce, so the session's companion keys ``:lock`` and ``:w`` exist). Each case prints its figures
(`figure`) and ends with the global invariants (`invariants`: every 5xx a 503 with
Retry-After, nothing internal leaked, no key without TTL, no connection leak).
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from redis_sessions import AsyncRedisStore, ConnectOptions, RedisStore, connect, connect_async
from redis_sessions._ids import handle_for, new_id
from redis_sessions.asgi import SessionMiddleware, get_session
from redis_sessions.server import LocalServer, free_port
from tests.faults.faultkit import (
    BUDGET,
    FAULT_OPTIONS,
    RETRY_AFTER,
    SECRET,
    Exchange,
    FaultApp,
    capture_store_log,
    check_invariants,
    fault_app,
    figure,
    store_log,
)
from tests.support.clusterkit import HOST, LocalCluster, cli_binary
from tests.support.servers import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.faults]

RECOVERY = 15.0
"""Seconds within which the slots of a failed primary must be served again (B3)."""
WINDOW = 1.0
"""A lost acknowledged write must have been acknowledged this close to the kill (async
replication: what the replica had not received yet)."""
POPULATION = 3000
USERS = 24
RESHARD_SLOTS = 300
"""Slots C5 moves with valkey-cli (which takes ~10 ms a slot)."""


# -- the app ------------------------------------------------------------------------------------


class ClusterApp(FaultApp):
    """`FaultApp` with ``/login`` (regenerate) and ``/incr`` (a counter, locked with
    ``options={"lock": ["/incr"]}``) on a Cluster URL."""

    def __post_init__(self) -> None:
        self.closed = False
        self.store = AsyncRedisStore(connect_async(self.url, FAULT_OPTIONS), **self.store_options)

        async def login(request: Request) -> JSONResponse:
            session = get_session(request)
            session.regenerate()
            session["user"] = "alice"
            return JSONResponse({"ok": True})

        async def incr(request: Request) -> JSONResponse:
            return JSONResponse({"n": get_session(request).incr("n")})

        app = fault_app(self.store.aclose)
        app.router.routes.extend([Route("/login", login), Route("/incr", incr)])
        middleware = SessionMiddleware(
            app, self.store, secret=SECRET, retry_after=RETRY_AFTER, **self.options
        )
        self.http = TestClient(middleware, raise_server_exceptions=False)

    def key(self, cookie: str) -> str:
        """The Redis key of the session a cookie (``<id>.<signature>``) names."""
        return self.store.layout.key(handle_for(cookie.rsplit(".", 1)[0]))


def assert_clean(exchanges: list[Exchange]) -> None:
    """Every exchange answered 2xx or 503, within the request budget."""
    for e in exchanges:
        assert e.ok or e.status == 503, f"{e.path} answered {e.status}: {e.body!r}"
        assert e.seconds < BUDGET, f"{e.path} took {e.seconds:.2f} s"


@dataclass
class Writes:
    """Sequential ``/set`` requests with distinct fields, round-robin over `cookies` (or to a
    given user); remembers what was acknowledged, and when, to audit losses afterwards. User
    *i* starts with ``u=u<i>`` (`start_users`); the ``n`` counter of ``/incr`` is left to the
    tests that use it."""

    app: ClusterApp
    cookies: list[str]
    count: int = 0
    acked: dict[tuple[int, str], tuple[str, float]] = field(default_factory=dict)
    attempted: dict[tuple[int, str], str] = field(default_factory=dict)
    # id(exchange) -> user; ids stay unique because the app's log keeps every exchange.
    users: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for user in range(len(self.cookies)):
            self.attempted[(user, "u")] = f"u{user}"
            self.acked[(user, "u")] = (f"u{user}", 0.0)

    def write(self, user: int | None = None) -> Exchange:
        """One ``/set`` of a new field, to `user` or the next one in turn."""
        i = self.count
        self.count += 1
        user = i % len(self.cookies) if user is None else user
        key, value = f"k{i}", f"v{i}"
        self.attempted[(user, key)] = value
        exchange = self.app.request(f"/set?{key}={value}", self.cookies[user])
        self.users[id(exchange)] = user
        if exchange.ok:
            self.acked[(user, key)] = (value, exchange.started + exchange.seconds)
        return exchange

    def round(self) -> list[Exchange]:
        """One write to every user."""
        return [self.write(user) for user in range(len(self.cookies))]

    def user(self, exchange: Exchange) -> int:
        """The user a `write` exchange was for."""
        return self.users[id(exchange)]

    def audit(self) -> tuple[list[tuple[int, str, float]], list[tuple[int, str]]]:
        """(acknowledged writes missing now, with their ack time; fields nobody wrote)."""
        lost: list[tuple[int, str, float]] = []
        unexpected: list[tuple[int, str]] = []
        for user, cookie in enumerate(self.cookies):
            data = self.app.read(cookie)
            for (owner, key), (value, acked_at) in self.acked.items():
                if owner == user and data.get(key) != value:
                    lost.append((user, key, acked_at))
            unexpected += [
                (user, key)
                for key, value in data.items()
                if key != "n" and self.attempted.get((user, key)) != value
            ]
        return lost, unexpected


def start_users(app: ClusterApp, count: int = USERS, first: int = 0) -> list[str]:
    """`count` new sessions, user *i* holding ``u=u<i>`` (from `first`); their cookies."""
    return [app.new_session(u=f"u{user}") for user in range(first, first + count)]


def populate(store: RedisStore, count: int) -> set[str]:
    """`count` sessions written through the sync store; their handles."""
    handles = {handle_for(new_id()) for _ in range(count)}
    for n, handle in enumerate(sorted(handles)):
        assert store.set(handle, {"n": n, "h": handle[:8]}) is True
    return handles


async def apopulate(url: str, count: int) -> set[str]:
    """`count` sessions written through an async store, concurrently beyond the pool size;
    their handles."""
    handles = sorted(handle_for(new_id()) for _ in range(count))
    # The library's default client settings: this is a load, not a fault (the fault tests'
    # 0.25 s connect timeout is tight for 8 new connections per node on a busy 2-core box).
    options = ConnectOptions(max_connections=8)
    store = AsyncRedisStore(connect_async(url, options))
    try:
        # 8 times the pool in flight: the store queues what the node pools cannot take.
        width = 64
        for start in range(0, count, width):
            batch = handles[start : start + width]
            done = await asyncio.gather(*(store.set(h, {"n": 0, "h": h[:8]}) for h in batch))
            assert all(done)
    finally:
        await store.aclose()
    return set(handles)


def sync_store(url: str) -> RedisStore:
    """A sync store with the fault-test client settings; close its client after use."""
    return RedisStore(connect(url, FAULT_OPTIONS))


def invariants(
    app: ClusterApp, cluster: LocalCluster, caplog: pytest.LogCaptureFixture | None = None
) -> None:
    """`check_invariants` on the primaries (a replica refuses the I-1 script's reads of slots
    it does not own, and the app never connects to one); no replica port leaked either. With
    `caplog`, I-4 too: one WARNING for the test's one outage, one INFO when it ended."""
    check_invariants(
        app, cluster.primaries(), extra_ports=[n.port for n in cluster.replicas()], caplog=caplog
    )


def outage_ends(app: ClusterApp, loop: Writes) -> None:
    """Keep writing until the store logs the end of the outage: on a Cluster that takes a
    success `Health.settle` seconds after the last failure (one node down while the others
    serve is one outage, not one per request)."""
    settle = app.store.health.settle
    assert settle > 0, "a Cluster store ends an outage only after a quiet spell"
    wait_until(
        lambda: loop.write().ok and app.store.health.available,
        settle + 2,
        interval=0.05,
        message="the store never logged the end of the outage",
    )


def stored_handles(cluster: LocalCluster) -> set[str]:
    """The handles of the session keys stored now, by a fresh client of the tests' own."""
    admin = cluster.admin()
    try:
        keys = [k.decode() for k in admin.scan_iter(match="sess:{*}", count=1000)]
    finally:
        admin.close()
    return {k[k.index("{") + 1 : -1] for k in keys if k.endswith("}")}


def owners(cluster: LocalCluster, slots: list[int]) -> list[LocalServer]:
    """The primary serving each slot."""
    return [cluster.primary_of_slot(slot) for slot in slots]


# -- the module's cluster -------------------------------------------------------------------


@dataclass
class Holder:
    """The module's current cluster (the `cluster` fixture may replace it)."""

    cluster: LocalCluster


@pytest.fixture(scope="module")
def cluster_holder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Holder]:
    """One cluster for this module's destructive cases; stopped at the end, whichever it is."""
    holder = Holder(LocalCluster(tmp_path_factory.mktemp("cluster-faults")))
    try:
        holder.cluster.start()
        yield holder
    finally:
        holder.cluster.stop()


@pytest.fixture
def cluster(cluster_holder: Holder, tmp_path_factory: pytest.TempPathFactory) -> LocalCluster:
    """The module's cluster, healthy and empty. Nodes a previous test left down are restarted;
    a cluster that does not heal (a test failed halfway through a migration) is replaced."""
    current = cluster_holder.cluster
    try:
        for node in current.nodes:
            if not node.is_running:
                current.restart(node)
        current.wait_ok(RECOVERY)
    except (AssertionError, RuntimeError):
        current.stop()
        current = LocalCluster(tmp_path_factory.mktemp("cluster-faults"))
        cluster_holder.cluster = current
        current.start()
    current.flush()
    return current


# -- C1 -----------------------------------------------------------------------------------------


def test_c1_sessions_over_all_slots_listing_exact_and_regenerate_across_slots(
    redis_cluster: LocalCluster,
) -> None:
    cluster = redis_cluster
    cluster.flush()
    store = sync_store(cluster.url)
    try:
        started = time.monotonic()
        handles = populate(store, POPULATION // 2)
        sync_seconds = time.monotonic() - started
        started = time.monotonic()
        handles |= asyncio.run(apopulate(cluster.url, POPULATION - POPULATION // 2))
        async_seconds = time.monotonic() - started
        assert len(handles) == POPULATION

        with ClusterApp(cluster.url, {"lock": ["/incr"]}) as app:
            cookies = start_users(app, 20)
            for cookie in cookies:
                # Locked, nonce-carrying writes: the script's keys are the session, its
                # :lock and its :w; a CROSSSLOT would come back as an error, not a 2xx.
                assert [app.request("/incr", cookie).status for _ in range(2)] == [200, 200]
            old_keys = [app.key(c) for c in cookies]
            renewed = []
            for cookie in cookies:
                exchange = app.request("/login", cookie)
                assert exchange.ok and exchange.cookie and exchange.cookie != cookie
                renewed.append(exchange.cookie)
            new_keys = [app.key(c) for c in renewed]
            for user, (old, new) in enumerate(zip(cookies, renewed, strict=True)):
                assert app.read(new) == {"u": f"u{user}", "n": 2, "user": "alice"}
                stale = app.request("/get", old)
                assert stale.ok and stale.body == "{}", "the old id still works"
            admin = cluster.admin()
            try:
                assert sum(admin.exists(k) for k in old_keys) == 0, "old sessions left behind"
                assert all(admin.exists(k) for k in new_keys)
                keys = [k.decode() for k in admin.scan_iter(match="sess:*", count=1000)]
            finally:
                admin.close()
        old_slots = cluster.keyslots(old_keys)
        new_slots = cluster.keyslots(new_keys)
        cross_slot = sum(1 for a, b in zip(old_slots, new_slots, strict=True) if a != b)
        assert cross_slot >= len(cookies) - 2, "regenerate was not tried across slots"

        # Every key of a session (data, :w, and the :lock name) is in the session's slot.
        by_handle: dict[str, list[str]] = defaultdict(list)
        for key in keys:
            by_handle[key[key.index("{") + 1 : key.index("}")]].append(key)
        companions = [k for k in keys if k.endswith("}:w")]
        assert len(companions) == len(cookies), f"expected a :w key per /incr user: {keys[:5]}"
        lock_names = [store.layout.lock_key(h) for h in by_handle]
        slots = cluster.keyslots([*keys, *lock_names])
        slot_of = dict(zip([*keys, *lock_names], slots, strict=True))
        for handle, members in by_handle.items():
            found = {slot_of[k] for k in [*members, store.layout.lock_key(handle)]}
            assert len(found) == 1, f"keys of one session in slots {found}: {members}"
        data_slots = [slot_of[k] for k in keys if k.endswith("}")]
        per_primary = Counter(n.port for n in owners(cluster, data_slots))

        expected = handles | {handle_for(c.rsplit(".", 1)[0]) for c in renewed}
        started = time.monotonic()
        listed = list(store.ids())
        list_seconds = time.monotonic() - started
        assert len(listed) == len(set(listed)), "ids() repeated a session"
        assert set(listed) == expected
        assert store.length() == len(expected)
        everything = list(store.all())
        assert len(everything) == len(expected)
        assert {h for h, _ in everything} == expected
        assert all(data["h"] == h[:8] for h, data in everything if h in handles)

        async def alisting() -> tuple[list[str], int, int]:
            astore = AsyncRedisStore(connect_async(cluster.url, FAULT_OPTIONS))
            try:
                ids = [h async for h in astore.ids()]
                return ids, await astore.length(), len([x async for x in astore.all()])
            finally:
                await astore.aclose()

        alisted, alength, aall = asyncio.run(alisting())
        store.close()
        invariants(app, cluster)  # after closing the stores: I-5 counts them
        assert len(alisted) == len(set(alisted)) and set(alisted) == expected
        assert alength == aall == len(expected)
        figure(
            "C1",
            sessions=len(expected),
            slots_used=len(set(data_slots)),
            sessions_per_primary="/".join(str(per_primary[p]) for p in sorted(per_primary)),
            sync_create_seconds=sync_seconds,
            async_create_seconds=async_seconds,
            list_seconds=list_seconds,
            regenerated=len(renewed),
            regenerated_across_slots=cross_slot,
            companion_keys=len(companions),
        )
        assert len(per_primary) == 3 and min(per_primary.values()) > POPULATION // 4
    finally:
        store.close()
        cluster.flush()


# -- C2, C3 -------------------------------------------------------------------------------------


def test_c2_kill9_primary_under_load_slots_back_within_15s(
    cluster: LocalCluster, caplog: pytest.LogCaptureFixture
) -> None:
    capture_store_log(caplog)
    seed = random.randrange(2**32)
    target = random.Random(seed).randint(30, 90)
    store = sync_store(cluster.url)
    try:
        handles = populate(store, POPULATION)
        populated_at = time.monotonic()
        with ClusterApp(cluster.url) as app:
            cookies = start_users(app)
            victim = cluster.primary_of_slot(cluster.keyslot(app.key(cookies[0])))
            homes = owners(cluster, cluster.keyslots([app.key(c) for c in cookies]))
            affected = {u for u, home in enumerate(homes) if home is victim}
            assert 0 < len(affected) < len(cookies)
            on_victim = sum(
                1
                for n in owners(cluster, cluster.keyslots([store.layout.key(h) for h in handles]))
                if n is victim
            )
            loop = Writes(app, cookies)
            while loop.count < target:
                assert loop.write().ok, "a write failed before any fault"
            mark = len(app.log)
            killed_at = time.monotonic()
            cluster.kill(victim)

            def affected_served() -> bool:
                exchange = loop.write()
                return exchange.ok and loop.user(exchange) in affected

            wait_until(
                affected_served,
                RECOVERY,
                interval=0,
                message=f"the killed primary's slots not served within {RECOVERY} s",
            )
            first = app.log[-1]
            recovery = first.started + first.seconds - killed_at
            outage = app.log[mark:]
            cluster_ok = cluster.wait_ok(RECOVERY) + time.monotonic() - killed_at
            after = loop.round() + loop.round()
            assert all(e.ok for e in after), [e.status for e in after if not e.ok]
            assert victim not in cluster.primaries()
            outage_ends(app, loop)
            lost, unexpected = loop.audit()
        assert_clean(app.log)
        others = [e for e in outage if loop.user(e) not in affected]
        assert any(e.ok for e in others), "no other slot was served during the failover"
        # Measured with a fresh client of our own; the store's listing is checked below.
        missing = handles - stored_handles(cluster)
        recent = sum(
            1 for _, acked_at in loop.acked.values() if killed_at - WINDOW <= acked_at <= killed_at
        )
        figure(
            "C2",
            seconds_to_recovery=recovery,
            seconds_to_cluster_ok=cluster_ok,
            acknowledged_lost=len(lost),
            acknowledged=len(loop.acked),
            acknowledged_last_1s_before_kill=recent,
            sessions_lost=len(missing),
            sessions_on_killed_primary=on_victim,
            requests_during_outage=len(outage),
            responses_503=len(app.unavailable),
            other_slots_ok_during_outage=f"{sum(e.ok for e in others)}/{len(others)}",
            max_request_seconds=max(e.seconds for e in app.log),
            kill_after=target,
            seed=seed,
        )
        assert recovery < RECOVERY
        assert unexpected == [], f"fields nobody wrote (or wrong values): {unexpected}"
        early = [item for item in lost if item[2] < killed_at - WINDOW]
        assert early == [], f"lost writes acknowledged > {WINDOW} s before the kill: {early}"
        if killed_at - populated_at > WINDOW:
            assert missing == set(), f"{len(missing)} sessions written long before the kill lost"
        # The store's client last saw the old topology: its first listing must follow the
        # failover, not fail on the dead primary.
        expected = (handles - missing) | {handle_for(c.rsplit(".", 1)[0]) for c in cookies}
        listed = list(store.ids())
        assert len(listed) == len(set(listed)) and set(listed) == expected
        assert store.length() == POPULATION - len(missing) + len(cookies)
    finally:
        store.close()
    invariants(app, cluster, caplog)


def test_c3_killed_primary_rejoins_as_replica_without_client_errors(
    cluster: LocalCluster, caplog: pytest.LogCaptureFixture
) -> None:
    capture_store_log(caplog)
    store = sync_store(cluster.url)
    try:
        handles = populate(store, 1000)
        with ClusterApp(cluster.url) as app:
            cookies = start_users(app)
            loop = Writes(app, cookies)
            loop.round()
            victim = cluster.primary_of_slot(cluster.keyslot(app.key(cookies[0])))
            promoted = cluster.replica_of(victim)
            cluster.kill(victim)
            cluster.wait_ok(RECOVERY)
            # The app learns the new primary (its first requests there may be 503: that is C2).
            wait_until(
                lambda: all(e.ok for e in loop.round()),
                RECOVERY,
                interval=0,
                message="the app did not recover after the failover",
            )
            mark, logged = len(app.log), len(store_log(caplog))
            restarted_at = time.monotonic()
            cluster.restart(victim)

            def rejoined() -> bool:
                loop.write()
                view = cluster.self_view(victim)
                return not view.is_primary and cluster.problem() is None

            wait_until(
                rejoined,
                RECOVERY,
                interval=0,
                message="the restarted node did not rejoin as a healthy replica",
            )
            rejoin = time.monotonic() - restarted_at
            loop.round()
            during = app.log[mark:]
            assert cluster.self_view(victim).primary_id == cluster.node_id(promoted)
            lost, unexpected = loop.audit()
        errors = [(e.path, e.status) for e in during if not e.ok]
        assert errors == [], f"client-visible errors while the node rejoined: {errors}"
        assert lost == [] and unexpected == []
        listed = list(store.ids())
        expected = handles | {handle_for(c.rsplit(".", 1)[0]) for c in cookies}
        assert len(listed) == len(set(listed)), "a session listed twice (a replica scanned?)"
        assert set(listed) == expected
        assert store.length() == len(expected) == len(list(store.all()))
        figure(
            "C3",
            seconds_to_rejoin=rejoin,
            requests_during_rejoin=len(during),
            errors_during_rejoin=len(errors),
            sessions_listed=len(listed),
        )
    finally:
        store.close()
    invariants(app, cluster)
    assert store_log(caplog)[logged:] == [], "an outage was logged while the node rejoined"


# -- C4 -----------------------------------------------------------------------------------------


def test_c4_graceful_failover_no_5xx_no_lost_write(
    cluster: LocalCluster, caplog: pytest.LogCaptureFixture
) -> None:
    capture_store_log(caplog)
    with ClusterApp(cluster.url, {"lock": ["/incr"]}) as app:
        cookies = start_users(app)
        loop = Writes(app, cookies)
        loop.round()
        old = cluster.primary_of_slot(cluster.keyslot(app.key(cookies[0])))
        replica = cluster.replica_of(old)
        counted = cookies[0]
        increments = [app.request("/incr", counted)]
        mark = len(app.log)
        started = time.monotonic()
        cluster.failover(replica)

        def switched() -> bool:
            loop.round()
            increments.append(app.request("/incr", counted))
            return cluster.self_view(replica).is_primary and cluster.problem() is None

        wait_until(switched, 10, interval=0, message="CLUSTER FAILOVER did not complete")
        seconds = time.monotonic() - started
        loop.round()
        during = app.log[mark:]
        assert cluster.primary_of_slot(cluster.keyslot(app.key(counted))) is replica
        lost, unexpected = loop.audit()
        counter = app.read(counted)["n"]
    invariants(app, cluster)
    failures = [(e.path, e.status) for e in app.log if not e.ok]
    figure(
        "C4",
        seconds_to_switch=seconds,
        requests_during=len(during),
        responses_5xx=len(failures),
        acknowledged_lost=len(lost),
        increments=len(increments),
        counter=counter,
    )
    assert failures == [], f"non-2xx answers during a graceful failover: {failures}"
    assert lost == [] and unexpected == []
    # Each acknowledged /incr applied exactly once across the switch.
    assert counter == len(increments)
    assert store_log(caplog) == [], "an outage was logged during a graceful failover"


# -- C5 -----------------------------------------------------------------------------------------


def test_c5_reshard_with_valkey_cli_under_load(cluster: LocalCluster, tmp_path: Path) -> None:
    source = cluster.primary_of_slot(0)
    destination = next(n for n in cluster.primaries() if n is not source)
    first, last = min(r for r, port in cluster.slot_map().items() if port == source.port)
    # valkey-cli takes a source's slots from its lowest one: slots 0 .. RESHARD_SLOTS - 1.
    assert first == 0 and last >= RESHARD_SLOTS
    store = sync_store(cluster.url)
    try:
        handles = populate(store, POPULATION)
        keys_moving = sum(
            1 for s in cluster.keyslots([store.layout.key(h) for h in handles]) if s < RESHARD_SLOTS
        )
        with ClusterApp(cluster.url, {"lock": ["/incr"]}) as app:
            cookies: list[str] = []
            # Users whose sessions are in the slots that move, and more elsewhere.
            while (
                sum(1 for s in cluster.keyslots([app.key(c) for c in cookies]) if s < RESHARD_SLOTS)
                < 4
            ):
                cookies += start_users(app, 16, first=len(cookies))
            loop = Writes(app, cookies)
            loop.round()
            counts = Counter[int]()  # acknowledged /incr per user
            tried = Counter[int]()
            mark = len(app.log)
            output = tmp_path / "reshard.log"
            started = time.monotonic()
            with output.open("wb") as log:
                proc = subprocess.Popen(
                    [
                        cli_binary(),
                        "--cluster",
                        "reshard",
                        f"{HOST}:{source.port}",
                        "--cluster-from",
                        cluster.node_id(source),
                        "--cluster-to",
                        cluster.node_id(destination),
                        "--cluster-slots",
                        str(RESHARD_SLOTS),
                        "--cluster-yes",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            try:

                def resharded() -> bool:
                    user = loop.user(loop.write())
                    tried[user] += 1
                    counts[user] += app.request("/incr", cookies[user]).ok
                    return proc.poll() is not None

                wait_until(resharded, 60, interval=0, message="valkey-cli reshard did not end")
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
            seconds = time.monotonic() - started
            assert proc.returncode == 0, output.read_text()[-2000:]
            during = app.log[mark:]
            cluster.wait_ok(RECOVERY)
            after = loop.round()
            assert all(e.ok for e in after), [e.status for e in after if not e.ok]
            assert cluster.primary_of_slot(0) is destination
            assert cluster.primary_of_slot(RESHARD_SLOTS - 1) is destination
            lost, unexpected = loop.audit()
            counters = [app.read(cookie).get("n", 0) for cookie in cookies]
        assert_clean(app.log)
        unreadable = [h for h in handles if store.get(h) is None]
        figure(
            "C5",
            slots_moved=RESHARD_SLOTS,
            keys_moved=keys_moving,
            seconds=seconds,
            requests_during=len(during),
            responses_503=len(app.unavailable),
            acknowledged_lost=len(lost),
            sessions_unreadable=len(unreadable),
        )
        assert unreadable == [], f"{len(unreadable)} sessions unreadable after the reshard"
        assert lost == [] and unexpected == []
        # A 503'd increment may still have applied (its reply lost), an acknowledged one must.
        for user, counter in enumerate(counters):
            assert counts[user] <= counter <= tried[user], (user, counts[user], counter)
    finally:
        store.close()
    invariants(app, cluster)


def test_c5_requests_at_each_step_of_a_slot_migration(cluster: LocalCluster) -> None:
    """One slot moved by hand (SETSLOT, MIGRATE one key at a time), with requests of every kind
    at each step: in ASK and TRYAGAIN states a request is 2xx or a clean 503, never a 500, and
    after the move everything is there."""
    with ClusterApp(cluster.url, {"lock": ["/incr"]}) as app:
        cookie = app.new_session(u="u0")
        assert app.request("/incr", cookie).ok  # leaves the :w companion key
        key = app.key(cookie)
        slot = cluster.keyslot(key)
        source = cluster.primary_of_slot(slot)
        destination = next(n for n in cluster.primaries() if n is not source)
        acked: dict[str, str] = {"u": "u0"}
        counted = 1
        steps: dict[str, list[int]] = {}

        def probe(step: str) -> None:
            nonlocal counted
            n = len(acked)
            exchanges = [
                app.request(f"/set?s{n}=x{n}", cookie),
                app.request("/get", cookie),
                app.request("/incr", cookie),
            ]
            if exchanges[0].ok:
                acked[f"s{n}"] = f"x{n}"
            if exchanges[2].ok:
                counted += 1
            assert_clean(exchanges)
            steps[step] = [e.status for e in exchanges]

        probe("before")
        cluster.call(
            destination, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", cluster.node_id(source)
        )
        cluster.call(
            source, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", cluster.node_id(destination)
        )
        probe("migrating")
        in_slot = cluster.call(source, "CLUSTER", "GETKEYSINSLOT", str(slot), "100")
        companions = [k for k in in_slot if k != key]
        assert key in in_slot and companions == [key + ":w"], in_slot
        cluster.call(source, "MIGRATE", HOST, str(destination.port), key, "0", "5000")
        probe("data_moved")  # the data at the destination (ASK), the :w still at the source
        for companion in companions:
            cluster.call(source, "MIGRATE", HOST, str(destination.port), companion, "0", "5000")
        probe("all_moved")
        for node in (
            destination,
            source,
            *[n for n in cluster.primaries() if n not in (source, destination)],
        ):
            cluster.call(
                node, "CLUSTER", "SETSLOT", str(slot), "NODE", cluster.node_id(destination)
            )
        cluster.wait_ok(RECOVERY)
        probe("after")
        assert steps["after"] == [200, 200, 200] and steps["before"] == [200, 200, 200]
        data = app.read(cookie)
    invariants(app, cluster)
    figure(
        "C5-steps",
        **{step: "/".join(map(str, s)) for step, s in steps.items()},
        companions=len(companions),
    )
    assert data == {**acked, "n": counted}


# -- C6 -----------------------------------------------------------------------------------------


def test_c6_primary_and_replica_down_503_then_recovery_when_the_node_returns(
    cluster: LocalCluster, caplog: pytest.LogCaptureFixture
) -> None:
    capture_store_log(caplog)
    with ClusterApp(cluster.url) as app:
        cookies = start_users(app)
        loop = Writes(app, cookies)
        loop.round()
        victim = cluster.primary_of_slot(cluster.keyslot(app.key(cookies[0])))
        replica = cluster.replica_of(victim)
        homes = owners(cluster, cluster.keyslots([app.key(c) for c in cookies]))
        affected = {u for u, home in enumerate(homes) if home is victim}
        survivors = [n for n in cluster.running() if n not in (victim, replica)]
        mark = len(app.log)
        killed_at = time.monotonic()
        cluster.kill(replica)
        cluster.kill(victim)

        def cluster_down() -> bool:
            loop.write()
            return all(cluster.state(n) == "fail" for n in survivors)

        wait_until(cluster_down, 10, interval=0, message="the cluster never reported fail")
        down_after = time.monotonic() - killed_at
        down = loop.round()
        # Full coverage (the default): with a third of the slots lost, nothing is served.
        assert [e.status for e in down] == [503] * len(cookies)
        outage = app.log[mark:]
        assert all(e.status == 503 for e in outage if loop.user(e) in affected)
        assert_clean(outage)

        restarted_at = time.monotonic()
        cluster.restart(victim)

        def served() -> bool:
            return all(e.ok for e in loop.round())

        wait_until(served, RECOVERY, interval=0, message="not served again after the restart")
        recovery = time.monotonic() - restarted_at
        cluster.restart(replica)
        cluster.wait_ok(RECOVERY)
        outage_ends(app, loop)
        lost, unexpected = loop.audit()
    warnings = [r.getMessage() for r in store_log(caplog) if r.levelname == "WARNING"]
    figure(
        "C6",
        seconds_to_cluster_fail=down_after,
        requests_during_outage=len(outage),
        responses_503=len(app.unavailable),
        seconds_to_recovery_after_restart=recovery,
        acknowledged_lost=len(lost),
        warnings=len(warnings),
    )
    assert lost == [] and unexpected == []  # the AOF of the restarted primary had everything
    invariants(app, cluster, caplog)
    # One outage, one WARNING (its first reason: the dead node); the INFO ending it names the
    # other reasons it went through.
    records = [r.getMessage() for r in store_log(caplog)]
    assert any("CLUSTERDOWN" in m for m in records), f"no record names CLUSTERDOWN: {records}"


# -- C7 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("reachable", ["primary", "replica"])
def test_c7_one_reachable_startup_node_is_enough(
    redis_cluster: LocalCluster, reachable: str
) -> None:
    cluster = redis_cluster
    node = (cluster.primaries() if reachable == "primary" else cluster.replicas())[0]
    dead = [free_port(HOST), free_port(HOST)]  # nothing listens there
    url = f"redis+cluster://{HOST}:{dead[0]},{HOST}:{node.port},{HOST}:{dead[1]}/"
    try:
        with ClusterApp(url) as app:
            cookies = start_users(app, 30)
            homes = {
                n.port for n in owners(cluster, cluster.keyslots([app.key(c) for c in cookies]))
            }
            assert len(homes) == 3, "the sessions did not reach every primary"
            for user, cookie in enumerate(cookies):
                assert app.read(cookie) == {"u": f"u{user}"}
        invariants(app, cluster)  # before the sync store opens connections
        # The same through the sync client, with a redis:// URL and cluster=True.
        store = RedisStore(
            connect(f"redis://{HOST}:{dead[0]},{HOST}:{node.port}/", FAULT_OPTIONS, cluster=True)
        )
        try:
            handles = populate(store, 30)
            assert {h for h in handles if store.get(h) is not None} == handles
            assert store.length() == len(handles) + len(cookies)
        finally:
            store.close()
        figure(
            f"C7-{reachable}",
            startup_nodes=3,
            reachable=1,
            sessions=len(cookies) + 30,
            primaries_used=len(homes),
        )
    finally:
        cluster.flush()
