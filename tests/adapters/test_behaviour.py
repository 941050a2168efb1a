"""Both adapters against a real server: the session lifecycle and bad cookies (I1-I5)."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from redis_sessions import RedisStore, SessionTooLargeError
from redis_sessions.engine import Signer, handle_for, new_id
from tests.adapters.adapterkit import RoundTrips, make_client
from tests.adapters.apps import SECRET


def session_keys(r: redis.Redis) -> list[bytes]:
    return sorted(r.scan_iter(match="sess:*"))


def cookie_of(response: Any) -> str:
    return response.cookies["session"]


def test_first_visit_that_does_not_write_sets_no_cookie_and_stores_nothing(
    client: Any, clean_redis: redis.Redis
) -> None:
    response = client.get("/get")
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert session_keys(clean_redis) == []


def test_write_creates_session_with_safe_cookie_and_hashed_key(
    client: Any, clean_redis: redis.Redis
) -> None:
    response = client.get("/set?color=blue")
    header = response.headers["set-cookie"]
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Path=/" in header
    assert "Max-Age=86400" in header and "Secure" not in header
    assert response.headers["vary"] == "Cookie"
    assert response.headers["cache-control"] == 'private, no-cache="Set-Cookie"'
    session_id = cookie_of(response).rsplit(".", 1)[0]
    keys = session_keys(clean_redis)
    assert keys == [f"sess:{{{handle_for(session_id)}}}".encode()]
    assert session_id.encode() not in keys[0]
    assert 0 < clean_redis.pttl(keys[0]) <= 86_400_000
    assert client.get("/get").json() == {"color": "blue"}


def test_unmodified_read_sends_no_cookie(client: Any) -> None:
    client.get("/set?a=1")
    response = client.get("/get")
    assert response.json() == {"a": "1"}
    assert "set-cookie" not in response.headers


def test_modification_keeps_other_keys(client: Any) -> None:
    client.get("/set?a=1")
    client.get("/set?b=2")
    assert client.get("/get").json() == {"a": "1", "b": "2"}
    assert client.get("/incr").json() == {"n": 1}
    assert client.get("/incr").json() == {"n": 2}


def test_tampered_cookie_is_a_new_session_without_redis_call(
    client: Any, clean_redis: redis.Redis
) -> None:
    client.get("/set?secret=1")
    good = cookie_of(client.get("/set?x=1"))
    before = session_keys(clean_redis)
    sid, sig = good.rsplit(".", 1)
    flipped_sig = sid + "." + ("A" if sig[0] != "A" else "B") + sig[1:]
    flipped_id = ("A" if sid[0] != "A" else "B") + sid[1:] + "." + sig
    for value in (flipped_sig, flipped_id):
        client.cookies.clear()
        client.trips.count = 0
        response = client.get("/get", headers={"cookie": "session=" + value})
        assert response.status_code == 200
        assert response.json() == {}
        assert client.trips.count == 0
    client.cookies.clear()
    response = client.get("/set?y=1", headers={"cookie": "session=" + flipped_id})
    assert cookie_of(response).rsplit(".", 1)[0] not in (sid, flipped_id.rsplit(".", 1)[0])
    assert len(session_keys(clean_redis)) == len(before) + 1


def test_unknown_signed_id_is_never_adopted(client: Any, clean_redis: redis.Redis) -> None:
    unknown = new_id()
    cookie = Signer(SECRET).sign(unknown)
    client.trips.count = 0
    response = client.get("/set?k=v", headers={"cookie": "session=" + cookie})
    assert client.trips.count == 2  # the lookup, then the create under a new id
    new = cookie_of(response).rsplit(".", 1)[0]
    assert new != unknown
    assert clean_redis.exists(f"sess:{{{handle_for(unknown)}}}") == 0


GARBAGE = [
    "",
    ";",
    '"',
    '""',
    "   ",
    "a b c",
    "\x00",
    "é",
    "%41%42",
    "YQ==",
    "a.b",
    ".",
    "x" * 100,
    "session=session",
    "\\",
    "'",
    "{}",
    "a.b.c.d",
]


@pytest.mark.parametrize("value", GARBAGE)
def test_garbage_cookie_is_a_new_session_never_echoed(client: Any, value: str) -> None:
    header = f"session={value}".encode()
    if not value.isascii() and isinstance(client.store, RedisStore):
        # httpx's WSGI transport only sends ASCII headers: the server would pass latin-1.
        header = f"session={value}".encode().decode("latin-1").encode("ascii", "replace")
    client.trips.count = 0
    response = client.get("/set?a=1", headers={"cookie": header})
    assert response.status_code == 200
    assert client.trips.count == 1  # only the create: nothing was looked up
    issued = cookie_of(response)
    assert issued != value
    assert Signer(SECRET).unsign(issued) is not None


@pytest.mark.parametrize("size", [4096, 65536, 1 << 20])
def test_oversized_cookie_header_costs_no_redis_call(client: Any, size: int) -> None:
    client.trips.count = 0
    response = client.get("/get", headers={"cookie": "session=" + "a" * size})
    assert response.status_code == 200
    assert response.json() == {}
    assert client.trips.count == 0


def test_hundred_cookies_of_our_name_first_valid_wins(client: Any) -> None:
    good = cookie_of(client.get("/set?who=me"))
    client.cookies.clear()
    header = "; ".join([f"session={good}"] + ["session=junk"] * 99)
    assert client.get("/get", headers={"cookie": header}).json() == {"who": "me"}
    header = "; ".join(["session=junk"] * 100 + [f"session={good}"])
    assert client.get("/get", headers={"cookie": header}).json() == {}


def test_cookie_signed_with_old_listed_secret_is_accepted_and_resigned(
    kind: str, redis_url: str, clean_redis: redis.Redis
) -> None:
    old = "old-secret-0123456789abcdef"
    http, _ = make_client(kind, redis_url, secret=old)
    with http:
        cookie = cookie_of(http.get("/set?a=1"))
    rotated, _ = make_client(kind, redis_url, secret=["new-secret-0123456789abcdef", old])
    with rotated:
        rotated.cookies.clear()
        response = rotated.get("/get", headers={"cookie": "session=" + cookie})
        assert response.json() == {"a": "1"}
        resigned = cookie_of(response)
        assert resigned != cookie and resigned.rsplit(".", 1)[0] == cookie.rsplit(".", 1)[0]
        assert Signer("new-secret-0123456789abcdef").unsign(resigned) is not None
    removed, _ = make_client(kind, redis_url, secret="new-secret-0123456789abcdef")
    with removed:
        assert removed.get("/get", headers={"cookie": "session=" + cookie}).json() == {}


def test_login_regenerates_id_and_old_id_stops_working(
    client: Any, clean_redis: redis.Redis
) -> None:
    before = cookie_of(client.get("/set?cart=3"))
    after = cookie_of(client.get("/login?user=bob"))
    assert before.rsplit(".", 1)[0] != after.rsplit(".", 1)[0]
    assert len(session_keys(clean_redis)) == 1
    assert client.get("/get").json() == {"cart": "3", "user": "bob"}
    client.cookies.clear()
    assert client.get("/get", headers={"cookie": "session=" + before}).json() == {}


def test_logout_deletes_session_and_clears_cookie(client: Any, clean_redis: redis.Redis) -> None:
    client.get("/set?a=1")
    response = client.get("/logout")
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert session_keys(clean_redis) == []
    assert client.get("/get").json() == {}


def test_explicit_mid_request_save_and_later_changes_are_both_stored(client: Any) -> None:
    response = client.get("/save-mid")
    assert response.status_code == 200
    assert "set-cookie" in response.headers
    assert client.get("/get").json() == {"a": 1, "b": 2}


def test_reload_drops_unsaved_changes(client: Any) -> None:
    client.get("/set?a=1")
    assert client.get("/reload").json() == {"a": "1"}
    assert client.get("/get").json() == {"a": "1"}


def test_secure_auto_follows_https_and_trusted_proxy(
    kind: str, redis_url: str, clean_redis: redis.Redis
) -> None:
    http, _ = make_client(kind, redis_url, base_url="https://testserver")
    with http:
        assert "Secure" in http.get("/set?a=1").headers["set-cookie"]
    http, _ = make_client(kind, redis_url)
    with http:
        forwarded = {"x-forwarded-proto": "https"}
        assert "Secure" not in http.get("/set?a=1", headers=forwarded).headers["set-cookie"]
    http, _ = make_client(kind, redis_url, trust_proxy=True)
    with http:
        forwarded = {"x-forwarded-proto": "https"}
        assert "Secure" in http.get("/set?a=1", headers=forwarded).headers["set-cookie"]


def test_rolling_resends_cookie_and_refreshes_ttl(
    kind: str, redis_url: str, clean_redis: redis.Redis
) -> None:
    http, _ = make_client(kind, redis_url, rolling=True, idle_timeout=100)
    with http:
        http.get("/set?a=1")
        (key,) = session_keys(clean_redis)
        clean_redis.pexpire(key, 5000)
        response = http.get("/get")
        assert "Max-Age=100" in response.headers["set-cookie"]
        assert clean_redis.pttl(key) > 90_000


def test_session_over_max_size_is_an_error_and_writes_nothing(
    kind: str, redis_url: str, clean_redis: redis.Redis
) -> None:
    http, _ = make_client(kind, redis_url, store_options={"max_size": 50})
    with http:
        if kind == "asgi":
            response = http.get("/set?big=" + "x" * 100)
            assert response.status_code == 500
            assert "set-cookie" not in response.headers
        else:  # WSGI: the error reaches the server, which answers 500
            with pytest.raises(SessionTooLargeError, match="max_size limit of 50 bytes"):
                http.get("/set?big=" + "x" * 100)
    assert session_keys(clean_redis) == []


def test_wsgi_route_that_ignores_the_session_costs_nothing_even_with_cookie(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    http, store = make_client("wsgi", redis_url)
    trips = RoundTrips(store)
    with http:
        http.get("/set?a=1")
        trips.count = 0
        assert http.get("/untouched").status_code == 200
        assert trips.count == 0


def test_websocket_session_is_saved_on_accept(redis_url: str, clean_redis: redis.Redis) -> None:
    http, _ = make_client("asgi", redis_url)
    with http, http.websocket_connect("/ws") as ws:
        assert ws.receive_json() == {"ws": "hello"}
    (key,) = session_keys(clean_redis)
    assert clean_redis.hget(key, "ws") == b'"hello"'
