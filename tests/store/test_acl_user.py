"""The least-privilege session user of `redis_sessions.acl`, on real servers of the test's own.

A workload running every store operation and every script path, through the sync and the asyncio
store connected as that user, is refused nothing and sends exactly the commands the rule allows
(INFO commandstats counts the commands scripts run too): never CONFIG, KEYS, FLUSHALL, FLUSHDB or
MONITOR. The user is refused everything else. (The "acl" runner of conftest.py also runs the
whole store suite as that user.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from redis import exceptions as rx

from redis_sessions import ConnectOptions, Session
from redis_sessions.acl import SESSION_USER_ACL, acl_rules
from redis_sessions.engine import SessionEngine, handle_for
from tests.store.storekit import (
    ACL_PASSWORD,
    AclServer,
    StoreFactory,
    StoreProxy,
    acl_denials,
    create_session,
    incoming_for,
    now_ms,
    open_session,
    serve_read,
    session_rules,
)
from tests.support.servers import MakeServer, command_counts, command_delta, wait_until

# What a session store must never need.
ADMIN_ONLY = {
    "config|get",
    "config|set",
    "config|resetstat",
    "keys",
    "flushall",
    "flushdb",
    "monitor",
}
# Connection set-up that no ACL rule can forbid (HELLO carries AUTH with RESP3).
ALWAYS_ALLOWED = {"hello", "auth"}
# A health check before every command idle for over 1 ms: the PING is sure to be sent.
PINGING = ConnectOptions(health_check_interval=0.001)


def allowed_commands(rules: str) -> set[str]:
    """The commands a rule string allows, as INFO commandstats names them."""
    return {word[1:] for word in rules.split() if word.startswith("+")}


def finish(store: StoreProxy, engine: SessionEngine, session: Session) -> None:
    """The end of a request: plan, commit, record."""
    plan = engine.plan(session, now_ms())
    engine.committed(session, plan, store.commit(plan))


def locked(store: StoreProxy, engine: SessionEngine, sid: str) -> Session:
    """The start of a request that takes the session's lock."""
    incoming, now = incoming_for(sid), now_ms()
    spec = engine.load_spec(incoming, now, lock=True)
    assert spec is not None and spec.lock is not None
    return engine.open_session(incoming, store.load(spec), now)


def workload(store: StoreProxy, untimed: StoreProxy) -> None:
    """Every store operation, as the adapters and the CLI drive them, so every script path runs.

    `untimed` is a store with ``disable_ttl`` on the same server.
    """
    engine = store.engine()
    # A request's life: create, read, a delta save (increment: nonce log), regenerate, logout.
    sid = create_session(store, engine, user="ada", n=1, drop=True).id
    assert serve_read(store, engine, sid)["user"] == "ada"
    session = open_session(store, engine, sid)
    session.incr("n")
    session.setdefault("theme", "dark")
    del session["drop"]
    finish(store, engine, session)
    session = open_session(store, engine, sid)
    session.regenerate()
    finish(store, engine, session)
    sid = session.id
    rolling = store.engine(touch_after=0)
    assert dict(open_session(store, rolling, sid)) == {"user": "ada", "n": 2, "theme": "dark"}
    session = locked(store, engine, sid)
    session["paid"] = True
    finish(store, engine, session)
    session = locked(store, engine, sid)
    session.destroy()
    finish(store, engine, session)
    session = open_session(store, engine, create_session(store, engine, a=1).id)
    session.destroy()
    finish(store, engine, session)
    assert store.get(handle_for(sid)) is None
    # The store API and the CLI's listing.
    assert store.set("h1", {"user": "bob", "x": 1})
    assert store.set("h1", {"user": "bob"})
    assert store.get("h1") == {"user": "bob"}
    assert store.touch("h1", 60)
    assert store.set("h2", {"user": "cy"})
    assert sorted(store.ids()) == ["h1", "h2"]
    assert dict(store.all()) == {"h1": {"user": "bob"}, "h2": {"user": "cy"}}
    assert store.length() == 2
    info = store.describe("h1")
    # OBJECT and MEMORY run in a pcall: refused, they would only read as None.
    assert info is not None and info.user == "bob"
    assert info.size is not None and info.idle_s is not None
    assert sorted(i.user for i in store.sessions()) == ["bob", "cy"]
    assert store.destroy("h1") == 1
    assert store.clear() == 1
    assert untimed.set("h3", {"a": 1})
    assert untimed.touch("h3")
    assert untimed.destroy("h3") == 1


@pytest.mark.parametrize("runner", ["sync", "async"])
def test_workload_sends_only_what_the_rule_allows(
    runner: str, make_server: MakeServer, request: pytest.FixtureRequest
) -> None:
    acl = AclServer(make_server(appendonly=False))  # used by nothing else
    admin = acl.admin()
    factory = StoreFactory(runner, request)
    try:
        url = acl.user_url(admin)
        store = factory(url=url, options=PINGING)
        untimed = factory(url=url, options=PINGING, disable_ttl=True)
        before = command_counts(admin)
        workload(store, untimed)

        def pinged() -> bool:
            store.get("h")
            return command_delta(before, command_counts(admin)).get("ping", 0) > 0

        wait_until(pinged, timeout=2, message="no health-check PING was sent")
        sent = command_delta(before, command_counts(admin))
        assert acl_denials(admin) == []
    finally:
        factory.close()
        admin.close()
    assert not ADMIN_ONLY & sent.keys()
    # Sufficient (nothing refused) and minimal (every allowed command was needed).
    assert sent.keys() - ALWAYS_ALLOWED == allowed_commands(session_rules())


def test_session_user_is_refused_everything_else(make_server: MakeServer, tmp_path: Path) -> None:
    # The users.acl line of docs/deployment.md, as written there.
    aclfile = tmp_path / "users.acl"
    aclfile.write_text(
        f"user default on nopass ~* &* +@all\nuser sessions on >{ACL_PASSWORD} {session_rules()}\n"
    )
    server = make_server(appendonly=False, extra_args=["--aclfile", str(aclfile)])
    admin = redis.Redis.from_url(server.url)
    user = redis.Redis.from_url(f"redis://sessions:{ACL_PASSWORD}@127.0.0.1:{server.port}/0")
    try:
        admin.set("other", "x")
        assert user.hset("sess:{h}", "a", "1") == 1
        assert user.set("sess:{h}:lock", "token", px=1000)
        refused = [
            ("CONFIG", "GET", "maxmemory"),
            ("KEYS", "*"),
            ("FLUSHALL",),
            ("FLUSHDB",),
            ("MONITOR",),
            ("SELECT", "1"),
            ("PUBLISH", "channel", "m"),
            ("SUBSCRIBE", "channel"),
            ("GET", "other"),
            ("GET", "sess:plain"),
            ("HSET", "sessions:{h}", "a", "1"),
        ]
        for command in refused:
            with pytest.raises(rx.NoPermissionError):
                user.execute_command(*command)
        # Scripts are checked command by command and key by key.
        for script in ("return redis.call('FLUSHALL')", "return redis.call('GET', 'other')"):
            # Redis 7.0 words it "The user executing the script can't run this command".
            with pytest.raises(
                rx.ResponseError, match=r"ACL failure in script|user executing the script can.t"
            ):
                user.eval(script, 0)
        assert sorted(line.split()[2] for line in acl_denials(admin)) == sorted(
            [
                "config|get",
                "keys",
                "flushall",
                "flushdb",
                "monitor",
                "select",
                "publish",
                "subscribe",
                "other",
                "sess:plain",
                "sessions:{h}",
                "flushall",
                "other",
            ]
        )
        assert admin.get("other") == b"x" and admin.exists("sess:{h}") == 1
    finally:
        user.close()
        admin.close()


def test_rules_for_another_prefix_escape_its_glob_characters(make_server: MakeServer) -> None:
    acl = AclServer(make_server(appendonly=False))
    admin = acl.admin()
    url = acl.user_url(admin, "s*[1]:")
    user = redis.Redis.from_url(url)
    try:
        assert user.hset("s*[1]:{h}", "a", "1") == 1
        assert user.set("s*[1]:{h}:w", "n", px=1000)
        for key in ("sX1:{h}", "s1:{h}", "s*1:{h}", "s*[1]:plain"):  # what a raw glob matches
            with pytest.raises(rx.NoPermissionError):
                user.get(key)
    finally:
        user.close()
        admin.close()
    with pytest.raises(ValueError, match="whitespace"):
        acl_rules("my app:")


def test_rules_for_redis_7_0_leave_out_what_7_2_added() -> None:
    old = acl_rules(wait=True, server_version="7.0.15")
    assert {"client|setinfo", "client|no-touch", "waitaof"} & allowed_commands(old) == set()
    assert allowed_commands(acl_rules(wait=True)) - allowed_commands(old) == {
        "client|setinfo",
        "client|no-touch",
        "waitaof",
    }
    assert acl_rules(server_version="8.1") == acl_rules(server_version="7.2.4") == SESSION_USER_ACL
    with pytest.raises(ValueError, match="server_version"):
        acl_rules(server_version="latest")


def test_the_deployment_docs_give_the_rule() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "deployment.md").read_text()
    password = ">a-long-random-password"
    assert f"\nACL SETUSER sessions reset on {password} {SESSION_USER_ACL}\n" in docs
    assert f"\nuser sessions on {password} {SESSION_USER_ACL}\n" in docs
    assert f"\n{SESSION_USER_ACL}\n" in docs
