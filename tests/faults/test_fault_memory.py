"""M1, M2: Redis out of memory.

M1 (``noeviction``): once the store is full, creating or changing a session is a clean 503 (the
OOM error classified as unavailability), reads of existing sessions keep working, ``/logout``
still deletes and frees memory, after which new sessions are accepted again. The whole time the
store is full is one outage: one WARNING, one INFO (I-4).

M2 (``volatile-lru``): Redis evicts old sessions to make room; the users of evicted sessions get a
new session (a new id, 2xx), never an error: the silent-logout trade-off of an evicting policy.
"""

from __future__ import annotations

import pytest
import redis

from redis_sessions.engine import handle_for
from redis_sessions.server import LocalServer
from tests.faults.faultkit import (
    Exchange,
    FaultApp,
    capture_store_log,
    check_invariants,
    figure,
    store_log,
)
from tests.support.servers import MakeServer

pytestmark = pytest.mark.faults

MAXMEMORY = "2mb"
PAYLOAD = "x" * 8000  # a fat session, so that a few hundred requests fill the store
LIMIT = 1000  # more requests than that without filling the store is a setup error


def session_key(cookie: str) -> str:
    return f"sess:{{{handle_for(cookie.rsplit('.', 1)[0])}}}"


def warm_up(app: FaultApp) -> None:
    """Load and save once before filling the store, then log out.

    Loading a script costs the server some memory the first time (about 100 KiB on Valkey 8.1),
    which would otherwise be taken from what a few logouts free.
    """
    cookie = app.new_session(warm="up")
    assert app.read(cookie) == {"warm": "up"}
    assert app.request("/logout", cookie).ok


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def fill(app: FaultApp) -> tuple[list[str], Exchange]:
    """Create fat sessions until one is refused -> (their cookies, the refused exchange)."""
    cookies: list[str] = []
    while True:
        assert len(cookies) < LIMIT, "the store never filled up"
        exchange = app.request(f"/set?data={PAYLOAD}&n={len(cookies)}")
        if not exchange.ok:
            return cookies, exchange
        assert exchange.cookie
        cookies.append(exchange.cookie)


def noeviction_server(make_server: MakeServer) -> LocalServer:
    return make_server(
        appendonly=False, extra_args=["--maxmemory", MAXMEMORY, "--maxmemory-policy", "noeviction"]
    )


def test_m1_noeviction_full_store_gives_503_reads_and_logout_still_work(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    capture_store_log(caplog)
    server = noeviction_server(make_server)
    with FaultApp(server.url) as app, redis.Redis.from_url(server.url) as admin:
        warm_up(app)
        cookies, full = fill(app)
        assert full.status == 503, f"a create on a full store answered {full.status}"
        assert full.body == "Session store full, please retry later.\n", full.body
        assert full.cookie is None
        # The store is full for an 8 kB session; a tiny change may still fit (Redis refuses a
        # write only while the memory in use is above the limit), else it is a 503 too.
        changed = app.request("/set?more=1", cookies[0])
        assert changed.status in (200, 503), f"a modifying save on a full store: {changed.status}"
        more = {"more": "1"} if changed.ok else {}

        for n in (*range(5), *range(len(cookies) - 5, len(cookies))):
            expected = {"data": PAYLOAD, "n": str(n), **(more if n == 0 else {})}
            assert app.read(cookies[n]) == expected

        before = used_memory(admin)
        logged_out = cookies[:20]
        for cookie in logged_out:
            response = app.request("/logout", cookie)
            assert response.ok, f"/logout on a full store answered {response.status}"
            assert admin.exists(session_key(cookie)) == 0
        freed = before - used_memory(admin)
        assert freed > 0
        again = app.request(f"/set?data={PAYLOAD}&n=again")
        assert again.ok and again.cookie, f"a create after /logout answered {again.status}"
        assert app.read(again.cookie) == {"data": PAYLOAD, "n": "again"}
        assert app.read(cookies[-1])["n"] == str(len(cookies) - 1)
        figure(
            "M1",
            maxmemory=MAXMEMORY,
            sessions_stored=len(cookies),
            session_bytes=len(PAYLOAD),
            full_status=full.status,
            full_seconds=full.seconds,
            small_change_status=changed.status,
            logged_out=len(logged_out),
            freed_bytes=freed,
            create_after_logout=again.status,
        )
    check_invariants(app, [server], caplog=caplog)
    warnings = [r.getMessage() for r in store_log(caplog) if r.levelname == "WARNING"]
    assert warnings and all("OOM" in w for w in warnings), warnings


def test_m1_full_store_is_one_outage_in_the_log(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    capture_store_log(caplog)
    server = noeviction_server(make_server)
    with FaultApp(server.url) as app:
        warm_up(app)
        cookies, full = fill(app)
        assert full.status == 503
        # The limit is fuzzy by a few kB (client buffers count): fill until firmly full.
        refused = [full]
        while len(refused) < 3 or any(e.ok for e in refused[-3:]):
            assert len(refused) < 50, "the store never stayed full"
            refused.append(app.request(f"/set?data={PAYLOAD}&x={len(refused)}"))
        # Users of existing sessions keep trying to change them while the store is full.
        changes = [
            app.request(f"/set?data={'y' * len(PAYLOAD)}&more={i}", cookie)
            for i, cookie in enumerate(cookies[:5])
        ]
        for cookie in cookies[:20]:
            assert app.request("/logout", cookie).ok
        again = app.new_session(n="again")
        assert app.read(again) == {"n": "again"}
        levels = [r.levelname for r in store_log(caplog)]
        figure(
            "M1-log",
            refused_changes=sum(e.status == 503 for e in changes),
            warnings=levels.count("WARNING"),
            infos=levels.count("INFO"),
        )
    check_invariants(app, [server], caplog=caplog)


def test_m2_volatile_lru_evicts_old_sessions_and_their_users_start_anew(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    capture_store_log(caplog)
    server = make_server(
        appendonly=False,
        extra_args=["--maxmemory", MAXMEMORY, "--maxmemory-policy", "volatile-lru"],
    )
    with FaultApp(server.url) as app, redis.Redis.from_url(server.url) as admin:
        warm_up(app)
        cookies: list[str] = []
        # Create until at least half of the sessions were evicted; every create must succeed.
        while len(cookies) < 100 or 2 * int(admin.info("stats")["evicted_keys"]) < len(cookies):
            assert len(cookies) < LIMIT, "nothing was evicted"
            exchange = app.request(f"/set?data={PAYLOAD}&n={len(cookies)}")
            assert exchange.ok and exchange.cookie, f"a create answered {exchange.status}"
            cookies.append(exchange.cookie)
        gone = [c for c in cookies if not admin.exists(session_key(c))]
        # Any command may evict (Redis evicts before each one while over the limit).
        evicted_keys = int(admin.info("stats")["evicted_keys"])
        kept = [c for c in cookies if c not in gone]
        assert gone and kept
        # LRU, approximated: the evicted sessions are mostly the oldest ones.
        oldest_third = set(cookies[: len(cookies) // 3])
        evicted_old = sum(c in oldest_third for c in gone)

        renewed = 0
        for cookie in gone[:10]:
            exchange = app.request("/set?back=1", cookie)
            assert exchange.ok, f"the user of an evicted session got {exchange.status}"
            assert exchange.cookie, "no new session cookie for the user of an evicted session"
            assert exchange.cookie.split(".")[0] != cookie.split(".")[0], "the old id was reused"
            assert app.read(exchange.cookie) == {"back": "1"}
            renewed += 1
        for cookie in kept[-3:]:
            assert app.read(cookie)["data"] == PAYLOAD
        figure(
            "M2",
            maxmemory=MAXMEMORY,
            policy="volatile-lru",
            sessions_created=len(cookies),
            evicted_keys=evicted_keys,
            sessions_evicted=len(gone),
            evicted_from_oldest_third=evicted_old,
            users_given_new_session=renewed,
            errors=sum(not e.ok for e in app.log),
        )
        assert all(e.ok for e in app.log)
        assert evicted_old >= len(oldest_third) // 2
    # Eviction is not an outage: nothing to warn about.
    check_invariants(app, [server], caplog=caplog, outages=0)
