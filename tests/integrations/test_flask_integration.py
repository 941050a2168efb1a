"""Flask: flask.session through RedisSessions, with Flask's test client against a real server."""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
from flask import (
    Flask,
    Response,
    flash,
    get_flashed_messages,
    request,
    session,
    stream_with_context,
)

from redis_sessions import ConfigError, CookieConfig, RedisStore, SessionConfig, connect
from redis_sessions.engine import Signer, handle_for
from redis_sessions.flask import FlaskSession, RedisSessionInterface, RedisSessions, get_session
from tests.integrations.flaskkit import (
    SECRET,
    RoundTrips,
    cookie_attrs,
    cookie_value,
    example,
    sync_store,
)
from tests.support.servers import wait_until

create_app = example("flask_app.app").create_app


def key_of(cookie: str) -> bytes:
    """The Redis key of the session in a signed cookie value."""
    return f"sess:{{{handle_for(cookie.split('.', 1)[0])}}}".encode()


def set_cookies(response: Any) -> list[str]:
    return list(response.headers.getlist("Set-Cookie"))


def make_app(store: Any, ext_options: dict[str, Any] | None = None, **settings: Any) -> Flask:
    """A small app exercising the session API; `settings` go to app.config first."""
    app = Flask(__name__)
    app.secret_key = SECRET
    app.config.update(settings)
    RedisSessions(app, store=store, **(ext_options or {}))

    @app.get("/get")
    def get() -> dict[str, Any]:
        return {"data": dict(session), "new": session.new, "permanent": session.permanent}

    @app.get("/set")
    def set_() -> dict[str, Any]:
        session.update(request.args)
        session.modified = False  # Flask's "unmodified" flag: our changes are kept anyway
        return {"modified": session.modified}

    @app.get("/perm")
    def perm() -> dict[str, bool]:
        session.permanent = request.args["on"] == "1"
        return {"permanent": session.permanent}

    @app.get("/detached")
    def detached() -> dict[str, Any]:
        # A list the session no longer tracks once saved: only `modified = True` writes it.
        cart: list[str] = []
        session["cart"] = cart
        get_session().save()
        cart.append("book")
        if request.args.get("force") == "1":
            session.modified = True
        return {"ok": True}

    @app.get("/reload")
    def reload() -> dict[str, Any]:
        session["scratch"] = 1
        get_session().reload()  # drops the unsaved change
        return {"data": dict(session)}

    @app.get("/touch")
    def touch() -> dict[str, Any]:
        get_session().touch()
        return {"views": session.get("views")}

    @app.get("/untouched")
    def untouched() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/count")
    def count() -> dict[str, int]:
        return {"n": get_session().incr("n")}

    @app.get("/rmw")
    def rmw() -> dict[str, int]:
        session["m"] = session.get("m", 0) + 1
        return {"m": session["m"]}

    @app.get("/stream")
    def stream() -> Response:
        session["streamed"] = True

        def body() -> Iterator[str]:
            yield "chunk"

        return Response(stream_with_context(body()))

    return app


@pytest.fixture
def store(redis_url: str, clean_redis: redis.Redis) -> RedisStore:
    return RedisStore(connect(redis_url))


# -- the example app ------------------------------------------------------------------------


def test_example_counter_login_regenerate_api_logout(
    store: RedisStore, clean_redis: redis.Redis
) -> None:
    app = create_app(store, SECRET)
    client = app.test_client()
    anonymous = app.test_client(use_cookies=False)
    assert client.get("/").json == {"views": 1}
    assert client.get("/").json == {"views": 2}
    before = client.get_cookie("session").value
    assert client.get("/api/me").status_code == 401

    response = client.post("/login", data={"user": "alice"})
    assert response.json == {"user": "alice"}
    after = client.get_cookie("session").value
    assert after.split(".")[0] != before.split(".")[0]
    # The old id stops working and its key is gone: no fixation.
    assert not clean_redis.exists(key_of(before))
    assert anonymous.get("/api/me", headers={"Cookie": f"session={before}"}).status_code == 401
    assert client.get("/api/me").json == {"user": "alice", "views": 2}
    assert client.post("/login").status_code == 400

    response = client.post("/logout")
    assert response.json == {"ok": True}
    assert "max-age" in cookie_attrs(set_cookies(response)[0])
    assert cookie_attrs(set_cookies(response)[0])["max-age"] == "0"
    assert client.get_cookie("session") is None
    assert list(clean_redis.scan_iter(match="sess:*")) == []
    assert anonymous.get("/api/me", headers={"Cookie": f"session={after}"}).status_code == 401
    assert client.get("/health").json == {"status": "ok"}


def test_example_remember_me_makes_a_persistent_cookie(store: RedisStore) -> None:
    app = create_app(store, SECRET, PERMANENT_SESSION_LIFETIME=datetime.timedelta(hours=2))
    client = app.test_client()
    forgetful = set_cookies(client.post("/login", data={"user": "a"}))[0]
    assert "max-age" not in cookie_attrs(forgetful)
    remembered = set_cookies(client.post("/login", data={"user": "a", "remember": "1"}))[0]
    assert cookie_attrs(remembered)["max-age"] == "7200"


# -- round trips (DESIGN §4) ----------------------------------------------------------------

BUDGET = [
    ("untouched without cookie", 0),
    ("untouched with cookie", 0),
    ("tampered cookie", 0),
    ("read", 1),
    ("modify", 2),
    ("new and written", 1),
    ("destroy", 2),
]


@pytest.mark.parametrize(("what", "trips"), BUDGET, ids=[b[0] for b in BUDGET])
def test_round_trip_budget(store: RedisStore, what: str, trips: int) -> None:
    client = create_app(store, SECRET).test_client(use_cookies=False)
    cookie = cookie_value(set_cookies(client.post("/login?user=alice"))[0])
    client.get("/api/me", headers={"Cookie": f"session={cookie}"})  # scripts cached
    counter = RoundTrips(store)
    headers = {"Cookie": f"session={cookie}"}
    if what == "untouched without cookie":
        response = client.get("/health")
    elif what == "untouched with cookie":
        response = client.get("/health", headers=headers)
    elif what == "tampered cookie":
        response = client.get("/api/me", headers={"Cookie": f"session={cookie[:-2]}xx"})
        assert response.status_code == 401
    elif what == "read":
        response = client.get("/api/me", headers=headers)
        assert response.json == {"user": "alice", "views": 0}
    elif what == "modify":
        response = client.get("/", headers=headers)
    elif what == "new and written":
        response = client.get("/")
    else:
        response = client.post("/logout", headers=headers)
    assert response.status_code < 500
    assert counter.take() == trips


def test_untouched_route_sends_no_cookie_and_no_vary(store: RedisStore) -> None:
    client = create_app(store, SECRET).test_client()
    client.get("/")
    response = client.get("/health")
    assert set_cookies(response) == []
    assert "Vary" not in response.headers
    # A route that reads the session varies on the cookie even when it sets none.
    response = client.get("/api/me")
    assert "Cookie" in response.headers["Vary"]


# -- permanent sessions and Flask's cookie settings -----------------------------------------


def test_permanent_vs_browser_session_cookie(store: RedisStore, clean_redis: redis.Redis) -> None:
    app = make_app(store, PERMANENT_SESSION_LIFETIME=3600)
    client = app.test_client()
    browser = set_cookies(client.get("/set?a=1"))[0]
    assert "max-age" not in cookie_attrs(browser)
    assert "expires" not in cookie_attrs(browser)
    (key,) = clean_redis.scan_iter(match="sess:*")
    assert 3590_000 < clean_redis.pttl(key) <= 3600_000  # the idle timeout still applies
    assert set_cookies(client.get("/get")) == []  # a read re-sends no browser-session cookie

    switched = set_cookies(client.get("/perm?on=1"))  # same id, cookie re-sent as persistent
    assert cookie_value(switched[0]) == cookie_value(browser)
    assert cookie_attrs(switched[0])["max-age"] == "3600"
    # SESSION_REFRESH_EACH_REQUEST (Flask's default): a read re-sends a permanent cookie.
    again = set_cookies(client.get("/get"))
    assert 3590 <= int(cookie_attrs(again[0])["max-age"]) <= 3600
    assert client.get("/get").get_json()["permanent"] is True

    back = set_cookies(client.get("/perm?on=0"))
    assert "max-age" not in cookie_attrs(back[0])
    assert set_cookies(client.get("/perm?on=0")) == []  # unchanged: nothing to write or send


def test_refresh_each_request_off_sends_permanent_cookie_only_on_change(store: RedisStore) -> None:
    app = make_app(store, PERMANENT_SESSION_LIFETIME=3600, SESSION_REFRESH_EACH_REQUEST=False)
    client = app.test_client()
    assert cookie_attrs(set_cookies(client.get("/perm?on=1"))[0])["max-age"] == "3600"
    assert set_cookies(client.get("/get")) == []
    assert cookie_attrs(set_cookies(client.get("/set?b=2"))[0])["max-age"] == "3600"


def test_session_permanent_setting_makes_new_sessions_permanent(store: RedisStore) -> None:
    client = make_app(store, SESSION_PERMANENT=True).test_client()
    days31 = str(31 * 86400)  # Flask's default PERMANENT_SESSION_LIFETIME
    assert cookie_attrs(set_cookies(client.get("/set?a=1"))[0])["max-age"] == days31
    assert client.get("/get").get_json()["permanent"] is True
    assert "_permanent" not in client.get("/get").get_json()["data"]  # the default is not stored


def test_session_cookie_settings_are_honoured(store: RedisStore) -> None:
    app = make_app(
        store,
        SESSION_COOKIE_NAME="sid",
        SESSION_COOKIE_DOMAIN="example.test",
        SESSION_COOKIE_PATH="/app",
        SESSION_COOKIE_HTTPONLY=False,
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_PARTITIONED=True,
    )
    (header,) = set_cookies(app.test_client().get("/set?a=1"))
    assert header.startswith("sid=")
    attrs = cookie_attrs(header)
    assert attrs["domain"] == "example.test"
    assert attrs["path"] == "/app"
    assert "httponly" not in attrs
    assert "secure" in attrs
    assert attrs["samesite"] == "Strict"
    assert "partitioned" in attrs


def test_flask_defaults_and_application_root(store: RedisStore) -> None:
    client = make_app(store, APPLICATION_ROOT="/root").test_client()
    attrs = cookie_attrs(set_cookies(client.get("/set?a=1"))[0])
    assert attrs["path"] == "/root"
    assert "httponly" in attrs
    assert attrs["samesite"] == "Lax"  # Flask sends none by default; browsers assume Lax
    assert "secure" not in attrs  # plain http; SESSION_COOKIE_SECURE=False means "auto"
    https = client.get("/set?a=2", base_url="https://localhost")
    assert "secure" in cookie_attrs(set_cookies(https)[0])


def test_explicit_options_win_over_flask_settings(store: RedisStore) -> None:
    app = make_app(
        store,
        {"name": "explicit", "same_site": "strict", "idle_timeout": 60},
        SESSION_COOKIE_NAME="sid",
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_PERMANENT=True,
    )
    header = set_cookies(app.test_client().get("/set?a=1"))[0]
    assert header.startswith("explicit=")
    assert cookie_attrs(header)["samesite"] == "Strict"
    assert cookie_attrs(header)["max-age"] == "60"


def test_aliases_and_a_whole_cookie_config(store: RedisStore) -> None:
    app = make_app(
        store,
        {"session_cookie": "alias", "max_age": 90},
        SESSION_COOKIE_NAME="sid",
        SESSION_PERMANENT=True,
    )
    header = set_cookies(app.test_client().get("/set?a=1"))[0]
    assert header.startswith("alias=")
    assert cookie_attrs(header)["max-age"] == "90"
    app = make_app(
        store,
        {"cookie": CookieConfig(name="whole", http_only=False)},
        SESSION_COOKIE_NAME="sid",
        SESSION_COOKIE_HTTPONLY=True,
    )
    header = set_cookies(app.test_client().get("/set?a=1"))[0]
    assert header.startswith("whole=")
    assert "httponly" not in cookie_attrs(header)


def test_config_object_is_used_as_given(store: RedisStore) -> None:
    config = SessionConfig(secret="config-object-secret-0123456789", idle_timeout=120)
    app = make_app(store, {"config": config, "permanent": True}, SESSION_COOKIE_NAME="ignored")
    header = set_cookies(app.test_client().get("/set?a=1"))[0]
    assert header.startswith("session=")
    assert cookie_attrs(header)["max-age"] == "120"
    assert Signer("config-object-secret-0123456789").unsign(cookie_value(header)) is not None


def test_secret_key_fallbacks_verify_and_the_cookie_is_resigned(store: RedisStore) -> None:
    old = "the-previous-secret-0123456789"
    client = make_app(store, SECRET_KEY=old).test_client(use_cookies=False)
    cookie = cookie_value(set_cookies(client.get("/set?a=1"))[0])
    rotated = make_app(store, SECRET_KEY_FALLBACKS=[old]).test_client(use_cookies=False)
    response = rotated.get("/get", headers={"Cookie": f"session={cookie}"})
    assert response.get_json()["data"] == {"a": "1"}
    resigned = cookie_value(set_cookies(response)[0])
    assert resigned.split(".")[0] == cookie.split(".")[0]
    assert Signer(SECRET).unsign(resigned) is not None


def test_default_store_uses_redis_sessions_url(redis_url: str, clean_redis: redis.Redis) -> None:
    client = make_app(None, REDIS_SESSIONS_URL=redis_url).test_client()
    client.get("/set?a=1")
    assert client.get("/get").get_json()["data"] == {"a": "1"}
    assert len(list(clean_redis.scan_iter(match="sess:*"))) == 1


def test_init_app_factory_pattern_and_extension_registry(store: RedisStore) -> None:
    sessions = RedisSessions(store=store)
    app = Flask(__name__)
    app.secret_key = SECRET
    sessions.init_app(app)
    assert isinstance(app.session_interface, RedisSessionInterface)
    assert app.extensions["redis_sessions"] is app.session_interface
    assert app.session_interface.store is store


def test_configuration_errors(store: RedisStore) -> None:
    with pytest.raises(ConfigError, match="secret_key"):
        RedisSessions(Flask(__name__), store=store)
    with pytest.raises(ConfigError, match="persist"):
        RedisSessions(store=store, persist=False)
    app = Flask(__name__)
    app.secret_key = "short"
    with pytest.raises(ConfigError):
        RedisSessions(app, store=store)


# -- Flask's session API ----------------------------------------------------------------------


def test_session_new_and_modified_flags(store: RedisStore) -> None:
    client = make_app(store).test_client()
    assert client.get("/get").get_json()["new"] is True
    assert client.get("/set?a=1").json == {"modified": True}
    assert client.get("/get").json == {"data": {"a": "1"}, "new": False, "permanent": False}


def test_modified_true_forces_a_write_of_untracked_nested_changes(
    store: RedisStore, clean_redis: redis.Redis
) -> None:
    client = make_app(store).test_client()
    client.get("/detached")
    assert client.get("/get").get_json()["data"] == {"cart": []}  # the change was invisible
    client.get("/detached?force=1")
    assert client.get("/get").get_json()["data"] == {"cart": ["book"]}


def test_modified_true_on_an_unchanged_session_writes_it(store: RedisStore) -> None:
    app = make_app(store)

    @app.get("/force")
    def force() -> dict[str, bool]:
        session.modified = True  # before any access: the session loads first
        return {"modified": session.modified}

    client = app.test_client()
    client.get("/set?a=1")
    counter = RoundTrips(store)
    assert client.get("/force").json == {"modified": True}
    assert counter.take() == 2  # read + write
    assert client.get("/get").get_json()["data"] == {"a": "1"}


def test_reload_drops_unsaved_changes_and_touch_refreshes(
    store: RedisStore, clean_redis: redis.Redis
) -> None:
    client = make_app(store).test_client()
    client.get("/set?views=3")
    assert client.get("/reload").json == {"data": {"views": "3"}}
    (key,) = clean_redis.scan_iter(match="sess:*")
    clean_redis.pexpire(key, 5000)
    response = client.get("/touch")
    assert response.json == {"views": "3"}
    assert clean_redis.pttl(key) > 30 * 86400_000  # back to the idle timeout (31 days)
    assert "max-age" not in cookie_attrs(set_cookies(response)[0])  # re-sent, browser-session


def test_changes_made_in_after_request_are_saved(store: RedisStore) -> None:
    app = make_app(store)

    @app.after_request
    def stamp(response: Response) -> Response:
        session["last_path"] = request.path
        return response

    client = app.test_client()
    client.get("/set?a=1")
    assert client.get("/get").get_json()["data"] == {"a": "1", "last_path": "/set"}


def test_flash_messages_survive_the_redirect(store: RedisStore) -> None:
    app = make_app(store)

    @app.get("/flash")
    def flash_it() -> dict[str, bool]:
        flash("saved", "info")
        return {"ok": True}

    @app.get("/messages")
    def messages() -> dict[str, Any]:
        return {"messages": get_flashed_messages(with_categories=True)}

    client = app.test_client()
    client.get("/flash")
    assert client.get("/messages").json == {"messages": [["info", "saved"]]}
    assert client.get("/messages").json == {"messages": []}


def test_get_session_needs_redis_sessions() -> None:
    app = Flask(__name__)
    app.secret_key = SECRET
    with app.test_request_context("/"), pytest.raises(LookupError, match="RedisSessions"):
        get_session()


def test_a_session_not_opened_by_the_interface_is_not_saved(store: RedisStore) -> None:
    app = make_app(store)
    response = Response()
    app.session_interface.save_session(app, FlaskSession(genid=str, created_ms=0), response)
    assert response.headers.get("Set-Cookie") is None


# -- Redis down -------------------------------------------------------------------------------


def assert_503(response: Any) -> None:
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.headers["Cache-Control"] == "no-store"
    assert set_cookies(response) == []
    assert b"Traceback" not in response.data


@pytest.mark.faults
def test_store_down_is_503_with_retry_after_then_recovers(
    make_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_server(appendonly=True, appendfsync="always")
    store = sync_store(server.url)
    app = make_app(store)
    app.testing = True  # exceptions would propagate to the test instead of becoming a 500
    client = app.test_client(use_cookies=False)
    cookie = cookie_value(set_cookies(client.get("/set?a=1"))[0])
    headers = {"Cookie": f"session={cookie}"}
    caplog.set_level(logging.WARNING, logger="redis_sessions")
    server.kill()
    assert_503(client.get("/get", headers=headers))  # the lazy load fails inside the view
    assert_503(client.get("/set?b=2"))  # the save fails after the view returned
    assert_503(client.get("/stream"))  # the streamed body is dropped, not sent with a 200
    assert client.get("/untouched", headers=headers).status_code == 200  # never loaded
    server.restart()
    wait_until(
        lambda: client.get("/get", headers=headers).status_code == 200,
        5,
        message="no recovery after restart",
    )
    assert client.get("/get", headers=headers).get_json()["data"] == {"a": "1"}
    assert [r.levelname for r in caplog.records if r.name == "redis_sessions"] == ["WARNING"]


@pytest.mark.faults
def test_store_down_in_the_example_app(make_server: Any) -> None:
    server = make_server(appendonly=False)
    client = create_app(sync_store(server.url), SECRET).test_client()
    client.post("/login?user=alice")
    server.kill()
    assert_503(client.get("/api/me"))
    assert_503(client.post("/logout"))
    assert client.get("/health").status_code == 200


@pytest.mark.faults
def test_anonymous_fallback_serves_an_unsaved_empty_session(make_server: Any) -> None:
    server = make_server(appendonly=False)
    app = make_app(sync_store(server.url), {"on_unavailable": "anonymous"})
    client = app.test_client(use_cookies=False)
    cookie = cookie_value(set_cookies(client.get("/set?a=1"))[0])
    server.kill()
    response = client.get("/get", headers={"Cookie": f"session={cookie}"})
    assert response.status_code == 200
    assert response.get_json()["data"] == {}
    assert set_cookies(response) == []


def test_parallel_increments_and_locked_read_modify_writes_lose_nothing(
    store: RedisStore, clean_redis: redis.Redis
) -> None:
    # 10 parallel requests of one session: all may wait (the default bound is 5 waiters).
    app = make_app(store, {"lock": ["/rmw"], "lock_timeout": 10, "lock_waiters": 10})
    with app.test_client() as client:
        client.get("/set?start=1")
        cookie = client.get_cookie("session")
        assert cookie is not None
    barrier = threading.Barrier(10)

    def hit(i: int, path: str) -> int:
        with app.test_client() as client:
            client.set_cookie("session", cookie.value)
            if i < 10:
                barrier.wait(timeout=10)
            return client.get(path).status_code

    for path in ("/count", "/rmw"):
        with ThreadPoolExecutor(max_workers=10) as pool:
            assert set(pool.map(hit, range(30), [path] * 30)) == {200}
    stored = clean_redis.hgetall(key_of(cookie.value))
    assert (stored[b"n"], stored[b"m"]) == (b"30", b"30")
    assert clean_redis.exists(key_of(cookie.value) + b":lock") == 0
