"""K1, K3-K6: concurrent requests on one session, over real HTTP-level concurrency."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import pytest
import redis

from redis_sessions import AsyncRedisStore, RedisStore, connect, connect_async
from redis_sessions.asgi import SessionMiddleware as ASGISessions
from redis_sessions.engine import handle_for
from redis_sessions.wsgi import SessionMiddleware as WSGISessions
from tests.adapters.apps import SECRET, Gate, asgi_app, wsgi_app
from tests.faults.faultkit import figure
from tests.support.servers import command_counts, command_delta


def session_keys(r: redis.Redis) -> list[bytes]:
    return list(r.scan_iter(match="sess:*"))


def session_id(cookie: str) -> str:
    return cookie.rsplit(".", 1)[0]


def session_key(cookie: str) -> str:
    return f"sess:{{{handle_for(session_id(cookie))}}}"


def issued(response: httpx.Response) -> str | None:
    """The session cookie a response sets: its value, "" when it clears it, None for none."""
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name.strip() == "session":
            return "" if "max-age=0" in header.lower() else rest.split(";", 1)[0]
    return None


@pytest.mark.anyio
async def test_k1_asgi_50_parallel_writes_of_different_keys_all_survive(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    store = AsyncRedisStore(connect_async(redis_url))
    app = ASGISessions(asgi_app(), store, secret=SECRET)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        cookie = (await http.get("/set?start=1")).cookies["session"]
        http.cookies.clear()
        headers = {"cookie": "session=" + cookie}
        responses = await asyncio.gather(
            *(http.get(f"/set?k{i}={i}", headers=headers) for i in range(50))
        )
        assert all(r.status_code == 200 for r in responses)
        data = (await http.get("/get", headers=headers)).json()
    await store.aclose()
    assert {k: v for k, v in data.items() if k != "start"} == {f"k{i}": str(i) for i in range(50)}


def test_k1_wsgi_50_parallel_writes_of_different_keys_all_survive(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    app = WSGISessions(wsgi_app, RedisStore(connect(redis_url)), secret=SECRET)
    transport = httpx.WSGITransport(app=app)
    with httpx.Client(transport=transport, base_url="http://t") as http:
        cookie = http.get("/set?start=1").cookies["session"]
    headers = {"cookie": "session=" + cookie}
    barrier = threading.Barrier(10)

    def hit(i: int) -> int:
        with httpx.Client(transport=transport, base_url="http://t") as c:
            if i < 10:
                barrier.wait(timeout=10)
            return c.get(f"/set?k{i}={i}", headers=headers).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        assert set(pool.map(hit, range(50))) == {200}
    with httpx.Client(transport=transport, base_url="http://t") as http:
        data = http.get("/get", headers=headers).json()
    assert {k: v for k, v in data.items() if k != "start"} == {f"k{i}": str(i) for i in range(50)}


@pytest.mark.anyio
async def test_k3_save_after_concurrent_logout_does_not_resurrect(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    gate = Gate()
    store = AsyncRedisStore(connect_async(redis_url))
    app = ASGISessions(asgi_app(gate), store, secret=SECRET)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        cookie = (await http.get("/login?user=alice")).cookies["session"]
        http.cookies.clear()
        headers = {"cookie": "session=" + cookie}
        slow = asyncio.create_task(http.get("/slow", headers=headers))
        await asyncio.wait_for(gate.entered.wait(), 5)
        logout = await http.get("/logout", headers=headers)
        assert "Max-Age=0" in logout.headers["set-cookie"]
        gate.release.set()
        late = await slow
        assert late.status_code == 200
        # The late response must not hand the old id back, nor any new id, nor clear the
        # cookie (had the other request been a login, that would log the user out).
        assert "set-cookie" not in late.headers
        assert (await http.get("/get", headers=headers)).json() == {}
    await store.aclose()
    assert session_keys(clean_redis) == []


@pytest.mark.anyio
async def test_k5_200_concurrent_first_visits_create_nothing(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    store = AsyncRedisStore(connect_async(redis_url))
    app = ASGISessions(asgi_app(), store, secret=SECRET)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:
        responses = await asyncio.gather(*(http.get("/get") for _ in range(200)))
    await store.aclose()
    assert all(r.status_code == 200 and "set-cookie" not in r.headers for r in responses)
    assert session_keys(clean_redis) == []


RACERS = 20  # requests carrying the old id, writes and reads each


@dataclass
class LoginRace:
    """K4: `/login` with one cookie while other requests carry the same (old) cookie.

    `writes` are ``(field, response)`` for ``/set?<field>=1``; `reads` are ``/get`` responses.
    The ``after_`` lists are requests with the old id sent once the login answered.
    """

    old: str
    login: httpx.Response | None = None
    writes: list[tuple[str, httpx.Response]] = field(default_factory=list)
    reads: list[httpx.Response] = field(default_factory=list)
    after_writes: list[tuple[str, httpx.Response]] = field(default_factory=list)
    after_reads: list[httpx.Response] = field(default_factory=list)

    def take(self, paths: list[str], responses: list[httpx.Response], after: bool) -> None:
        """File the responses to `paths` (``/login``, ``/set?f=1``, ``/get``)."""
        writes, reads = (
            (self.after_writes, self.after_reads) if after else (self.writes, self.reads)
        )
        for path, response in zip(paths, responses, strict=True):
            if path.startswith("/login"):
                self.login = response
            elif path.startswith("/set?"):
                writes.append((path[5:].split("=")[0], response))
            else:
                reads.append(response)

    def cookies(self) -> list[str]:
        """Every session cookie issued (the login's first), to read their sessions."""
        responses = [self.login] if self.login else []
        responses += [r for _, r in self.writes + self.after_writes]
        return [c for c in map(issued, responses) if c]


def race_paths(after: bool) -> list[str]:
    """Writes and reads interleaved; in the first wave `/login` sits in the middle."""
    paths = [p for i in range(RACERS) for p in (f"/set?{'b' if after else 'a'}{i}=1", "/get")]
    if not after:
        paths.insert(len(paths) // 2, "/login?user=alice")
    return paths


def audit_login_race(
    race: LoginRace, r: redis.Redis, sessions: dict[str, dict[str, object]]
) -> dict[str, int]:
    """Assert K4 on a finished race (`sessions`: data of every issued cookie) -> figures."""
    assert race.login is not None and race.login.status_code == 200
    new = issued(race.login)
    assert new, "the login did not issue a cookie"
    old_id, new_id = session_id(race.old), session_id(new)
    assert new_id != old_id, "the login kept the old id"
    login_data = sessions[new]
    assert login_data.get("user") == "alice" and login_data.get("cart") == "1", login_data
    for response in race.reads + race.after_reads:
        assert response.status_code == 200
        assert "user" not in response.json(), "a request with the old id saw the login's session"
    for response in race.after_reads:
        assert response.json() == {} and issued(response) is None
    figures = {"into_old": 0, "lost_to_login": 0, "cleared": 0, "new_session": 0}
    anonymous: set[bytes] = set()
    for name, response in race.writes + race.after_writes:
        assert response.status_code == 200
        cookie = issued(response)
        if cookie is None or session_id(cookie) == old_id:
            # Saved into the old session while it still existed (the cookie may be re-sent
            # with its new expiry).
            assert (name, response) in race.writes, "a write after login went to the old id"
            figures["into_old"] += 1
            figures["lost_to_login"] += name not in login_data
        elif cookie == "":  # loaded before the login, saved after it: the old id stays gone
            figures["cleared"] += 1
        else:  # the old id was unknown by then: a new, anonymous session
            assert session_id(cookie) not in (old_id, new_id), "an old or the login's id reused"
            assert sessions[cookie] == {name: "1"}, sessions[cookie]
            anonymous.add(session_key(cookie).encode())
            figures["new_session"] += 1
    assert r.exists(session_key(race.old)) == 0, "the old id was re-created"
    assert set(session_keys(r)) == {session_key(new).encode(), *anonymous}
    return figures


def race_figure(case: str, figures: dict[str, int]) -> None:
    figure(
        case,
        requests_racing_login=2 * RACERS,
        requests_after_login=2 * RACERS,
        writes_into_old=figures["into_old"],
        writes_lost_to_login=figures["lost_to_login"],
        writes_cleared=figures["cleared"],
        writes_new_session=figures["new_session"],
        old_id_recreated=0,
    )


@pytest.mark.anyio
async def test_k4_request_loaded_before_login_and_saved_after_does_not_recreate_the_old_id(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    gate = Gate()
    store = AsyncRedisStore(connect_async(redis_url))
    app = ASGISessions(asgi_app(gate), store, secret=SECRET)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:

        async def get(path: str, cookie: str | None = None) -> httpx.Response:
            http.cookies.clear()
            return await http.get(path, headers={"cookie": f"session={cookie}"} if cookie else {})

        old = issued(await get("/set?cart=1"))
        assert old
        slow = asyncio.create_task(get("/slow", old))
        await asyncio.wait_for(gate.entered.wait(), 5)
        login = await get("/login?user=alice", old)
        race = LoginRace(old, login=login)
        gate.release.set()
        late = await slow
        race.take(
            ["/get", "/set?x=1"], [await get("/get", old), await get("/set?x=1", old)], after=True
        )
        sessions = {c: (await get("/get", c)).json() for c in race.cookies()}
    await store.aclose()
    late_cookie = issued(late)
    assert late.status_code == 200
    assert late_cookie is None, "the late response must leave the login's cookie alone"
    figures = audit_login_race(race, clean_redis, sessions)
    assert "late" not in sessions[issued(login) or ""], "the late write reached the login"
    figure(
        "K4-late",
        late_status=late.status_code,
        late_cookie={None: "none", "": "cleared"}.get(late_cookie, "new-id"),
        old_id_recreated=0,
        after_login_new_sessions=figures["new_session"],
    )


@pytest.mark.anyio
async def test_k4_asgi_login_racing_requests_with_the_old_id(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    store = AsyncRedisStore(connect_async(redis_url))
    app = ASGISessions(asgi_app(), store, secret=SECRET)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:

        async def get(path: str, cookie: str | None = None) -> httpx.Response:
            http.cookies.clear()
            return await http.get(path, headers={"cookie": f"session={cookie}"} if cookie else {})

        old = issued(await get("/set?cart=1"))
        assert old
        race = LoginRace(old)
        for after in (False, True):
            paths = race_paths(after)
            race.take(paths, list(await asyncio.gather(*(get(p, old) for p in paths))), after)
        sessions = {c: (await get("/get", c)).json() for c in race.cookies()}
    await store.aclose()
    figures = audit_login_race(race, clean_redis, sessions)
    race_figure("K4-asgi", figures)


def test_k4_wsgi_login_racing_requests_with_the_old_id(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    app = WSGISessions(wsgi_app, RedisStore(connect(redis_url)), secret=SECRET)
    transport = httpx.WSGITransport(app=app)

    def get(
        path: str, cookie: str | None = None, barrier: threading.Barrier | None = None
    ) -> httpx.Response:
        with httpx.Client(transport=transport, base_url="http://t") as c:
            if barrier is not None:
                barrier.wait(timeout=10)
            return c.get(path, headers={"cookie": f"session={cookie}"} if cookie else {})

    old = issued(get("/set?cart=1"))
    assert old
    race = LoginRace(old)
    for after in (False, True):
        paths = race_paths(after)
        barrier = threading.Barrier(10)

        def send(
            i: int, paths: list[str] = paths, barrier: threading.Barrier = barrier
        ) -> httpx.Response:
            # The first 10 start together; the rest follow as threads free up.
            return get(paths[i], old, barrier if i < 10 else None)

        with ThreadPoolExecutor(max_workers=10) as pool:
            race.take(paths, list(pool.map(send, range(len(paths)))), after)
    sessions = {c: get("/get", c).json() for c in race.cookies()}
    figures = audit_login_race(race, clean_redis, sessions)
    race_figure("K4-wsgi", figures)


IDLE = 3600
TOUCH_AFTER = 60
USERS = 16
READS = 10
BURST = 3  # parallel requests per user; USERS * BURST stays below the pool size (64)
# Commands that change a session other than its TTL: a read-only load must send none.
DATA_WRITES = ("hset", "hdel", "hsetnx", "hmset", "del", "unlink", "set", "rename", "persist")
REFRESHES = ("pexpire", "expire", "pexpireat", "expireat")


@pytest.mark.anyio
async def test_k6_touch_after_refreshes_each_session_at_most_once_per_window(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    store = AsyncRedisStore(connect_async(redis_url))
    app = ASGISessions(asgi_app(), store, secret=SECRET, idle_timeout=IDLE, touch_after=TOUCH_AFTER)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as http:

        async def get(path: str, cookie: str | None = None) -> httpx.Response:
            http.cookies.clear()
            response = await http.get(
                path, headers={"cookie": f"session={cookie}"} if cookie else {}
            )
            assert response.status_code == 200
            return response

        cookies = [issued(await get(f"/set?u={i}")) or "" for i in range(USERS)]
        keys = [session_key(c) for c in cookies]
        assert all(clean_redis.exists(k) for k in keys)

        async def browse(cookie: str) -> None:  # one user, one request at a time
            for _ in range(READS):
                assert (await get("/get", cookie)).json() == {"u": str(cookies.index(cookie))}

        async def burst(cookie: str) -> None:  # one user, BURST requests at once
            await asyncio.gather(*(get("/get", cookie) for _ in range(BURST)))

        def age() -> None:
            # As if touch_after and 5 s more went by since the last refresh. PEXPIREAT, so that
            # the load's refreshes (PEXPIRE, in a script or not) are told apart in commandstats.
            at = int(time.time() * 1000) + (IDLE - TOUCH_AFTER - 5) * 1000
            with clean_redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.pexpireat(key, at)
                assert all(pipe.execute())

        windows: dict[str, tuple[int, int]] = {}  # name -> (refreshes, sessions refreshed)
        plan = [
            ("fresh", False, browse),
            ("due1", True, browse),
            ("due2", True, browse),
            ("due3", True, browse),
            ("burst", True, burst),
        ]
        for name, aged, load in plan:
            if aged:
                age()
            before = command_counts(clean_redis)
            await asyncio.gather(*(load(c) for c in cookies))
            delta = command_delta(before, command_counts(clean_redis))
            assert not {c: n for c, n in delta.items() if c in DATA_WRITES}, delta
            refreshed = sum(clean_redis.pttl(k) > (IDLE - TOUCH_AFTER) * 1000 for k in keys)
            windows[name] = (sum(delta.get(c, 0) for c in REFRESHES), refreshed)
    await store.aclose()
    figure(
        "K6",
        users=USERS,
        reads_per_user_per_window=READS,
        burst_per_user=BURST,
        touch_after=TOUCH_AFTER,
        fresh_refreshes=windows["fresh"][0],
        due_refreshes="/".join(str(windows[w][0]) for w in ("due1", "due2", "due3")),
        burst_refreshes=windows["burst"][0],
    )
    assert windows["fresh"][0] == 0, "a refresh before touch_after went by"
    for name in ("due1", "due2", "due3", "burst"):
        refreshed = windows[name][1]
        assert refreshed == USERS, f"{name}: {USERS - refreshed} sessions never refreshed"
    for name in ("due1", "due2", "due3"):
        # Every session refreshed, and no more refreshes than sessions: exactly one each.
        assert windows[name][0] <= USERS, f"{name}: {windows[name][0]} refreshes for {USERS}"
    # Parallel requests of one user may each find the refresh due before any lands; still at
    # most one per request.
    assert windows["burst"][0] <= USERS * BURST, windows["burst"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis.asyncio runs on asyncio only
