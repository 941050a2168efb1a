"""Django: the session engine behind Django's own SessionMiddleware, on a real server.

The example project (examples/django_app) is what the HTTP tests run, through Django's test
Client; the SessionBase contract (sync and async) is also driven directly.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.contrib.sessions.backends.base import CreateError, UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted
from django.core.exceptions import ImproperlyConfigured
from django.test import AsyncClient, Client, RequestFactory, override_settings

from redis_sessions import JSONSerializer, SessionTooLargeError, StoreUnavailableError
from redis_sessions._adapter import UNAVAILABLE_BODY
from redis_sessions.engine import handle_for, is_well_formed, new_id
from tests.integrations import djangokit
from tests.integrations.djangokit import FAST_FAIL, RoundTrips
from tests.support.servers import command_counts, command_delta

djangokit.configure()

from redis_sessions import django as engine  # noqa: E402 - needs configured settings
from redis_sessions.django import SessionStore  # noqa: E402

COOKIE = "sessionid"
DAY14_MS = 14 * 24 * 3600 * 1000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Env:
    redis: redis.Redis
    trips: RoundTrips
    client: Client

    def key(self, session_key: str) -> bytes:
        return f"sess:{{{handle_for(session_key)}}}".encode()

    def keys(self) -> list[bytes]:
        return sorted(self.redis.scan_iter(match=b"sess:*"))

    def cookie(self, client: Client | None = None) -> str:
        return str((client or self.client).cookies[COOKIE].value)


def _redis_settings(url: str, **extra: Any) -> dict[str, Any]:
    return {"url": url, "prefix": "sess:", "connect": FAST_FAIL, **extra}


@pytest.fixture
def env(redis_url: str, clean_redis: redis.Redis) -> Iterator[Env]:
    with override_settings(REDIS_SESSIONS=_redis_settings(redis_url)):
        yield Env(clean_redis, RoundTrips(engine.get_store()), Client())


def set_cookie_header(response: Any) -> str:
    return str(response.cookies[COOKIE].output(header="")) if COOKIE in response.cookies else ""


# -- the example project over HTTP -----------------------------------------------------------


def test_counter_creates_reads_and_modifies_one_hash(env: Env) -> None:
    first = env.client.get("/")
    assert first.json() == {"views": 1}
    key = env.cookie()
    assert "Max-Age=1209600" in set_cookie_header(first)
    assert env.keys() == [env.key(key)]
    stored = env.redis.hgetall(env.key(key))
    assert stored[b"views"] == b"1" and int(stored[b"$c"]) > 0

    assert env.client.get("/").json() == {"views": 2}
    assert env.cookie() == key  # Django re-sends the same key
    assert env.redis.hget(env.key(key), "views") == b"2"
    assert env.client.get("/api/me").status_code == 401
    assert env.keys() == [env.key(key)]


def test_redis_never_holds_the_cookie_value(env: Env) -> None:
    env.client.get("/")
    env.client.post("/login", {"user": "alice"})
    cookie = env.cookie().encode()
    (key,) = env.keys()
    assert key == env.key(env.cookie()) and cookie not in key
    for name, value in env.redis.hgetall(key).items():
        assert cookie not in name and cookie not in value


def test_login_cycles_the_key_and_logout_flushes(env: Env) -> None:
    env.client.get("/")
    old = env.cookie()
    response = env.client.post("/login", {"user": "alice"})
    assert response.json() == {"user": "alice"}
    new = env.cookie()
    assert new != old
    assert env.keys() == [env.key(new)]  # one stored session: the old one is gone
    assert env.redis.hget(env.key(new), "views") == b"1"  # data kept across the new key

    stale = Client()
    stale.cookies[COOKIE] = old
    denied = stale.get("/api/me")
    assert denied.status_code == 401
    assert denied.cookies[COOKIE].value == ""  # Django clears a cookie with no session
    assert env.keys() == [env.key(new)]  # and the old key is not adopted

    assert env.client.get("/api/me").json() == {"user": "alice", "views": 1}
    logout = env.client.post("/logout")
    assert logout.cookies[COOKIE].value == "" and logout.cookies[COOKIE]["max-age"] == 0
    assert env.keys() == []
    assert env.client.get("/api/me").status_code == 401


def test_django_auth_login_and_logout_use_cycle_key_and_flush(env: Env) -> None:
    from django.contrib import auth
    from django.contrib.auth.models import User

    user = User.objects.create_user("bob", password=None)  # unusable password: fast
    anonymous = SessionStore()
    anonymous["cart"] = [1, 2]
    anonymous.save()
    old = anonymous.session_key

    request = RequestFactory().get("/")
    request.session = SessionStore(old)
    auth.login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    request.session.save()
    new = request.session.session_key
    assert new != old and not SessionStore().exists(old)
    assert env.keys() == [env.key(new)]
    stored = SessionStore(new)
    assert stored["_auth_user_id"] == str(user.pk) and stored["cart"] == [1, 2]

    request = RequestFactory().get("/")
    request.session = SessionStore(new)
    assert auth.get_user(request) == user
    auth.logout(request)
    assert env.keys() == []


def test_an_unknown_or_malformed_cookie_is_never_adopted(env: Env) -> None:
    unknown = new_id()
    env.client.cookies[COOKIE] = unknown
    assert env.client.get("/").json() == {"views": 1}
    issued = env.cookie()
    assert issued != unknown
    assert env.keys() == [env.key(issued)]

    env.trips.take()
    tampered = Client()
    tampered.cookies[COOKIE] = "x" * 200  # not the shape of a key: no Redis call at all
    response = tampered.get("/api/me")
    assert response.status_code == 401 and env.trips.take() == 0
    assert response.cookies[COOKIE].value == ""


def test_round_trips_per_request(env: Env) -> None:
    trips, client = env.trips, env.client
    client.get("/health")
    client.get("/api/me")
    assert trips.take() == 0  # untouched or read without a cookie
    client.get("/")
    assert trips.take() == 1  # new and written
    client.get("/api/me")
    assert trips.take() == 1  # read
    client.get("/")
    assert trips.take() == 2  # read + delta write
    client.get("/health")
    assert trips.take() == 0  # a cookie, but the view never touches the session
    client.post("/login", {"user": "alice"})
    assert trips.take() == 3  # read + cycle_key (atomic rename) + the user key
    client.post("/logout")
    assert trips.take() == 1  # flush(): one delete, no read


def test_save_every_request_refreshes_the_ttl_and_the_cookie(env: Env) -> None:
    env.client.get("/")
    key = env.key(env.cookie())
    env.redis.pexpire(key, 5000)
    plain = env.client.get("/api/me")
    assert COOKIE not in plain.cookies and env.redis.pttl(key) <= 5000  # Django: no save

    with override_settings(SESSION_SAVE_EVERY_REQUEST=True):
        env.trips.take()
        refreshed = env.client.get("/api/me")
        assert env.trips.take() == 2  # read + TTL refresh (nothing changed: no field written)
    assert "Max-Age=1209600" in set_cookie_header(refreshed)
    assert env.redis.pttl(key) > DAY14_MS - 60_000


def test_expire_at_browser_close_sends_no_max_age_but_keeps_the_ttl(env: Env) -> None:
    with override_settings(SESSION_EXPIRE_AT_BROWSER_CLOSE=True):
        response = env.client.get("/")
    header = set_cookie_header(response)
    assert "Max-Age" not in header and "expires" not in header.lower()
    assert env.redis.pttl(env.key(env.cookie())) > DAY14_MS - 60_000


def test_session_cookie_age_is_the_key_ttl_and_set_expiry_wins(env: Env) -> None:
    with override_settings(SESSION_COOKIE_AGE=600):
        response = env.client.get("/")
        assert "Max-Age=600" in set_cookie_header(response)
        assert 595_000 < env.redis.pttl(env.key(env.cookie())) <= 600_000

        session = SessionStore()
        session.set_expiry(30)
        session.save()
        assert 25_000 < env.redis.pttl(env.key(session.session_key)) <= 30_000
        session.set_expiry(timedelta(seconds=90))  # an absolute date, stored as ISO text
        session.save()
        assert 85_000 < env.redis.pttl(env.key(session.session_key)) <= 90_000
        session.set_expiry(timedelta(seconds=-1))  # past: the save deletes it
        session.save()
        assert not session.exists(session.session_key)

        expired = SessionStore()
        expired.set_expiry(timedelta(seconds=-1))
        expired.save()  # a new session already past its date is not written at all
        stored = SessionStore()
        stored.save()
        stored.set_expiry(timedelta(seconds=-1))
        stored.cycle_key()  # cycling an expired session just deletes it
        assert env.keys() == [env.key(env.cookie())]


@pytest.mark.faults
def test_store_down_is_503_with_retry_after_then_recovers(
    make_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_server(appendfsync="always")
    caplog.set_level(logging.INFO, logger="redis_sessions")
    with override_settings(REDIS_SESSIONS=_redis_settings(server.url, retry_after=7)):
        client = Client()
        client.get("/")
        server.kill()
        for response in (
            client.get("/api/me"),  # the load fails in the view
            Client().get("/"),  # the save fails in SessionMiddleware, on the way out
            client.post("/logout"),  # flush() cannot delete: the user is not told "logged out"
            client.post("/login", {"user": "alice"}),
        ):
            assert response.status_code == 503
            assert response["Retry-After"] == "7"
            assert response["Cache-Control"] == "no-store"
            assert response.content == UNAVAILABLE_BODY
            assert COOKIE not in response.cookies
        assert Client().get("/health").status_code == 200

        server.restart()
        assert client.get("/").json() == {"views": 2}  # same session, no process restart
    messages = [r.getMessage() for r in caplog.records if r.name == "redis_sessions"]
    assert sum("unavailable" in m for m in messages) == 1  # one warning per outage
    assert any("available again" in m for m in messages)


@pytest.mark.faults
def test_store_down_without_the_middleware_is_never_a_silent_logout(make_server: Any) -> None:
    from django.conf import settings

    server = make_server(appendonly=False)
    middleware = [m for m in settings.MIDDLEWARE if "StoreUnavailable" not in m]
    with override_settings(REDIS_SESSIONS=_redis_settings(server.url), MIDDLEWARE=middleware):
        client = Client()
        client.get("/")
        server.kill()
        assert Client().get("/").status_code == 400  # Django's SessionInterrupted on save
        with pytest.raises(StoreUnavailableError):
            client.get("/api/me")  # a 500, not an empty session


@pytest.mark.faults
def test_on_unavailable_anonymous_serves_an_unsaved_empty_session(make_server: Any) -> None:
    server = make_server(appendonly=False)
    options = _redis_settings(server.url, on_unavailable="anonymous")
    with override_settings(REDIS_SESSIONS=options):
        client = Client()
        client.post("/login", {"user": "alice"})
        key = client.cookies[COOKIE].value
        server.kill()
        assert client.get("/api/me").status_code == 401  # anonymous for this request
        counted = client.get("/")
        assert counted.json() == {"views": 1}
        assert client.cookies[COOKIE].value == key  # the client keeps its (valid) key
        assert Client().get("/").status_code == 503  # a save that fails is never a 2xx


# -- the SessionBase contract, driven directly ------------------------------------------------


def test_create_save_delete_and_no_resurrection(env: Env) -> None:
    session = SessionStore()
    session.create()
    key = session.session_key
    assert session.modified and session.exists(key)
    assert env.redis.hkeys(env.key(key)) == [b"$c"]  # stored with empty data
    with pytest.raises(CreateError):
        session.save(must_create=True)

    SessionStore(key).delete()  # a logout in another request
    session["x"] = 1
    with pytest.raises(UpdateError):
        session.save()
    assert env.keys() == [] and SessionStore(key).load() == {}

    other = SessionStore()
    other.save()
    session.delete(other.session_key)
    assert env.keys() == []
    env.trips.take()
    assert not session.exists("nope") and env.trips.take() == 0
    keyless = SessionStore()
    keyless.delete()
    assert keyless.load() == {} and env.trips.take() == 0

    async def async_keyless() -> dict[str, Any]:
        await keyless.adelete()
        return await keyless.aload()

    assert asyncio.run(async_keyless()) == {}  # no I/O: no store opened on that loop


def test_delta_saves_keep_concurrent_changes_to_different_keys(env: Env) -> None:
    session = SessionStore()
    session.update({"a": 0, "b": 0, "gone": True})
    session.save()
    key = session.session_key
    first, second = SessionStore(key), SessionStore(key)
    first["a"] = 1
    second["b"] = 2
    del second["gone"]
    first.save()
    second.save()
    assert dict(SessionStore(key).items()) == {"a": 1, "b": 2}

    nested = SessionStore(key)
    nested["a"] = nested["a"]  # modified, same bytes: only the TTL is written
    before = command_counts(env.redis)
    nested.save()
    assert command_delta(before, command_counts(env.redis)) == {"pexpire": 1}


def test_cycle_key_without_a_loaded_session_and_after_a_concurrent_logout(env: Env) -> None:
    session = SessionStore()
    session.update({"a": "c", "b": "d"})
    session.save()
    old = session.session_key
    fresh = SessionStore(old)
    fresh.cycle_key()
    assert dict(fresh.items()) == {"a": "c", "b": "d"}
    assert fresh.session_key != old and not fresh.exists(old)
    assert env.keys() == [env.key(fresh.session_key)]
    env.trips.take()
    fresh.save()  # what SessionMiddleware does after login() when nothing else changed
    assert env.trips.take() == 0  # cycle_key's write already set data and TTL
    fresh.save()
    assert env.trips.take() == 1  # any later save refreshes the expiry, as Django's do

    racing = SessionStore(fresh.session_key)
    assert racing["a"] == "c"  # loaded
    SessionStore(fresh.session_key).delete()  # logout elsewhere, between load and login
    with pytest.raises(SessionInterrupted):
        racing.cycle_key()
    assert racing.session_key is None and racing.is_empty() and env.keys() == []

    anonymous = SessionStore()
    anonymous.cycle_key()  # nothing stored yet: just a new stored session
    assert env.keys() == [env.key(anonymous.session_key)]


def test_stored_values_are_json_and_pickle_is_refused(env: Env, redis_url: str) -> None:
    session = SessionStore()
    session["cart"] = {"items": [1, 2], "note": "é"}
    session["$odd"] = True
    session.save()
    stored = env.redis.hgetall(env.key(session.session_key))
    assert stored[b"cart"] == '{"items":[1,2],"note":"é"}'.encode()
    assert stored[b"$$odd"] == b"true"  # user keys never collide with metadata
    assert SessionStore(session.session_key)["$odd"] is True

    pickled = "django.contrib.sessions.serializers.PickleSerializer"
    with (
        override_settings(SESSION_SERIALIZER=pickled),
        pytest.raises(ImproperlyConfigured, match="pickle"),
    ):
        SessionStore()
    with (
        override_settings(SESSION_SERIALIZER="myapp.YAMLSerializer"),
        pytest.raises(ImproperlyConfigured, match="REDIS_SESSIONS"),
    ):
        SessionStore()
    for bad in (
        {"urll": "x"},
        {"serializer": "pickle"},
        {"on_unavailable": "ignore"},
        {"retry_after": -1},
        {"connect": {"timeout": 1}},
        {"connect": 3},
        {"max_size": 0},
        ["url"],
    ):
        with override_settings(REDIS_SESSIONS=bad), pytest.raises(ImproperlyConfigured):
            SessionStore()
    with override_settings(
        REDIS_SESSIONS=_redis_settings(redis_url, serializer=JSONSerializer(use_orjson=False))
    ):
        plain = SessionStore()
        plain["a"] = "é"
        plain.save()
        assert SessionStore(plain.session_key)["a"] == "é"
    with override_settings(
        REDIS_SESSIONS=_redis_settings(redis_url, serializer="msgpack", connect={"retries": 0})
    ):
        packed = SessionStore()
        packed["raw"] = b"\x00\x01"
        packed.save()
        assert SessionStore(packed.session_key)["raw"] == b"\x00\x01"


def test_unreadable_stored_sessions_read_as_new_and_size_is_capped(
    env: Env, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    foreign, corrupt = new_id(), new_id()
    env.redis.set(env.key(foreign), b"a string")
    env.redis.hset(env.key(corrupt), "views", b"{not json")
    for key in (foreign, corrupt):
        session = SessionStore(key)
        assert session.load() == {} and session.session_key is None
        assert not session.exists(key)
    assert "foreign Redis type" in caplog.text and "unreadable stored payload" in caplog.text
    assert env.client.get("/", HTTP_COOKIE=f"{COOKIE}={corrupt}").json() == {"views": 1}

    with override_settings(REDIS_SESSIONS=_redis_settings(redis_url, max_size=100)):
        session = SessionStore()
        session["big"] = "x" * 200
        with pytest.raises(SessionTooLargeError):
            session.save()
        session[1] = "not a str key"
        del session["big"]
        with pytest.raises(TypeError):
            session.save()


def test_clear_expired_is_a_no_op_and_clearsessions_runs(env: Env) -> None:
    from django.core.management import call_command

    session = SessionStore()
    session.save()
    SessionStore.clear_expired()
    call_command("clearsessions")
    assert session.exists(session.session_key)


def test_example_manage_py_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(djangokit.EXAMPLE / "manage.py"), "check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


# -- async --------------------------------------------------------------------------------------


@pytest.fixture
async def async_env(env: Env) -> Any:
    trips = RoundTrips(engine.get_async_store())
    yield trips
    await engine.aclose_async_store()


@pytest.mark.anyio
async def test_async_methods_mirror_the_sync_ones(env: Env, async_env: RoundTrips) -> None:
    trips = async_env
    session = SessionStore()
    await session.aset("a", 1)
    await session.asave()
    key = session.session_key
    assert trips.take() == 1 and env.keys() == [env.key(key)]

    loaded = SessionStore(key)
    assert await loaded.aget("a") == 1 and await loaded.aexists(key)
    assert trips.take() == 2
    await loaded.aset("b", 2)
    await loaded.asave()
    assert trips.take() == 1 and env.redis.hget(env.key(key), "b") == b"2"
    with pytest.raises(CreateError):
        await loaded.asave(must_create=True)

    await loaded.acycle_key()
    assert loaded.session_key != key and not await loaded.aexists(key)
    assert dict(await loaded.aitems()) == {"a": 1, "b": 2}
    await loaded.aflush()
    assert env.keys() == [] and loaded.session_key is None
    assert not await loaded.aexists("bad")

    created = SessionStore()
    await created.acreate()
    assert await created.aexists(created.session_key)
    await created.adelete(created.session_key)
    assert env.keys() == []
    await created.aset("c", 3)
    with pytest.raises(UpdateError):
        await created.asave()  # deleted meanwhile: not resurrected
    await SessionStore.aclear_expired()
    trips.take()
    assert is_well_formed(await SessionStore()._aget_or_create_session_key())
    assert trips.take() == 0  # new keys are 256 random bits: no aexists() round trip


@pytest.mark.anyio
async def test_async_view_reads_the_session_with_the_async_api(
    env: Env, async_env: RoundTrips
) -> None:
    client = AsyncClient()
    assert (await client.get("/api/me-async")).status_code == 401
    await client.post("/login", {"user": "alice"})
    async_env.take()
    response = await client.get("/api/me-async")
    assert response.json() == {"user": "alice", "views": 0}
    assert async_env.take() == 1  # aload on this event loop's store


def test_each_event_loop_gets_its_own_async_store(env: Env) -> None:
    async def store() -> Any:
        await engine.aclose_async_store()  # none yet on this loop: a no-op
        return engine.get_async_store()

    first, second = asyncio.run(store()), asyncio.run(store())
    assert first is not second  # a redis.asyncio connection belongs to its loop
    from redis_sessions.django._settings import _backend

    assert list(_backend()._async.values()) == [second]  # the closed loop's is dropped
    engine.close_stores()
    engine.close_stores()  # idempotent


@pytest.mark.anyio
@pytest.mark.faults
async def test_async_store_down(make_server: Any) -> None:
    server = make_server(appendonly=False)
    with override_settings(REDIS_SESSIONS=_redis_settings(server.url)):
        session = SessionStore()
        await session.asave()
        key = session.session_key
        server.kill()
        with pytest.raises(StoreUnavailableError):
            await SessionStore(key).aload()
        broken = SessionStore()
        await broken.aset("a", 1)
        with pytest.raises(SessionInterrupted) as caught:
            await broken.asave()
        assert isinstance(caught.value.__cause__, StoreUnavailableError)
        await engine.aclose_async_store()
    with override_settings(REDIS_SESSIONS=_redis_settings(server.url, on_unavailable="anonymous")):
        degraded = SessionStore(key)
        assert await degraded.aget("a") is None
        await degraded.aset("a", 1)
        await degraded.asave()  # never saved while degraded
        await degraded.acycle_key()  # the key rotates, nothing is written
        assert degraded.session_key != key
        await engine.aclose_async_store()


class _RepeatingKeys(SessionStore):
    """A SessionStore whose key generator repeats the key it was given first (a weak one)."""

    repeat: str = ""
    repeats = 0

    def _get_new_session_key(self) -> str:
        if self.repeats:
            type(self).repeats -= 1
            return self.repeat
        return super()._get_new_session_key()


def test_create_never_writes_into_an_existing_key_and_tries_another(env: Env) -> None:
    victim = SessionStore()
    victim["user"] = "alice"
    victim.create()
    assert env.redis.hget(env.key(victim.session_key), "user") == b'"alice"'
    _RepeatingKeys.repeat, _RepeatingKeys.repeats = victim.session_key, 2

    intruder = _RepeatingKeys()
    intruder["user"] = "mallory"
    intruder.create()  # the first two keys exist: CreateError for each, then a fresh key
    assert intruder.session_key != victim.session_key and _RepeatingKeys.repeats == 0
    assert env.redis.hget(env.key(victim.session_key), "user") == b'"alice"'
    assert env.redis.hget(env.key(intruder.session_key), "user") == b'"mallory"'

    again = SessionStore(victim.session_key)
    with pytest.raises(CreateError):
        again.save(must_create=True)  # Django's contract: CreateError, not UpdateError
