"""Dashboard access control: loopback-only without a token, token auth, headers, check_bind."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import pytest
import redis
from httpx import Response
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from redis_sessions import AsyncRedisStore, ConfigError
from redis_sessions.dashboard import check_bind, create_dashboard
from redis_sessions.dashboard._security import (
    AUTH_COOKIE,
    CSRF_COOKIE,
    SECURITY_HEADERS,
    Access,
    is_loopback,
)
from tests.dashboard.dashkit import FAST_FAIL, TOKEN, csrf_field, serve

REMOTE = ("10.0.0.5", 1234)


def assert_security_headers(headers: object) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert headers[name] == value, name  # type: ignore[index]


def test_without_a_token_only_loopback_clients_are_served(
    redis_url: str, seeded: dict[str, str]
) -> None:
    with serve(redis_url, client=REMOTE) as http:
        remote = http.get("/")
        remote_post = http.post(f"/s/{seeded['alice']}/delete", data={"csrf": "x"})
    with serve(redis_url, client=("::1", 1234)) as http:
        local6 = http.get("/")
    with serve(redis_url, client=("testclient", 1)) as http:
        named = http.get("/")  # a name, not an address: not trusted
    assert remote.status_code == 403 and "loopback" in remote.text
    assert remote_post.status_code == 403
    assert seeded["alice"] not in remote.text
    assert local6.status_code == 200
    assert named.status_code == 403
    assert_security_headers(remote.headers)


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("localhost:8001", 200),
        ("127.0.0.1", 200),
        ("[::1]:8001", 200),
        ("evil.example", 403),
        ("evil.example:8001", 403),
        ("10.0.0.1", 403),
    ],
)
def test_without_a_token_the_host_must_be_loopback_too(
    redis_url: str, seeded: dict[str, str], host: str, status: int
) -> None:
    # A page from evil.example resolving to 127.0.0.1 (DNS rebinding) sends its own Host.
    with serve(redis_url) as http:
        answer = http.get("/", headers={"host": host})
    assert answer.status_code == status
    if status == 403:
        assert "DNS-rebinding" in answer.text and seeded["alice"] not in answer.text


def test_with_a_token_any_host_name_is_fine(redis_url: str, seeded: dict[str, str]) -> None:
    with serve(redis_url, token=TOKEN, client=REMOTE) as http:
        answer = http.get(
            "/", headers={"host": "sessions.example.com", "authorization": f"Bearer {TOKEN}"}
        )
    assert answer.status_code == 200


def test_token_required_for_every_request(redis_url: str, seeded: dict[str, str]) -> None:
    with serve(redis_url, token=TOKEN) as http:  # even from loopback
        missing = http.get("/")
        wrong = http.get("/", headers={"authorization": "Bearer nope"})
        non_ascii = http.get("/", headers={"authorization": "Bearer caf\u00e9".encode()})
        wrong_query = http.get("/", params={"token": TOKEN + "x"})
        stats = http.get("/stats")
    for answer in (missing, wrong, non_ascii, wrong_query, stats):
        assert answer.status_code == 401
        assert seeded["alice"] not in answer.text
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert_security_headers(missing.headers)


def test_bearer_token_works_from_anywhere(redis_url: str, seeded: dict[str, str]) -> None:
    with serve(redis_url, token=TOKEN, client=REMOTE) as http:
        page = http.get("/", headers={"authorization": f"Bearer {TOKEN}"})
    assert page.status_code == 200 and seeded["alice"] in page.text


def test_query_token_sets_a_cookie_and_leaves_the_url(
    redis_url: str, seeded: dict[str, str], clean_redis: redis.Redis
) -> None:
    alice = seeded["alice"]
    with serve(redis_url, token=TOKEN, client=REMOTE, mount="/_sessions") as http:
        first = http.get("/_sessions/", params={"user": "alice", "token": TOKEN})
        assert first.status_code == 303
        assert first.headers["location"] == "/_sessions/?user=alice"
        cookie = first.headers["set-cookie"]
        assert TOKEN not in cookie  # a digest, not the token
        lowered = cookie.lower()
        assert "httponly" in lowered and "samesite=strict" in lowered
        assert "path=/_sessions" in lowered
        assert http.cookies.get(AUTH_COOKIE)
        listed = http.get(first.headers["location"])
        # Signed in already: a token in the address is dropped from it all the same.
        again = http.get("/_sessions/stats", params={"token": TOKEN})
        assert again.status_code == 303 and again.headers["location"] == "/_sessions/stats"
        detail = http.get(f"/_sessions/s/{alice}")
        # The cookie authenticates; the delete still needs the CSRF token.
        refused = http.post(f"/_sessions/s/{alice}/delete", data={})
        assert clean_redis.exists(f"sess:{{{alice}}}")
        done = http.post(f"/_sessions/s/{alice}/delete", data={"csrf": csrf_field(detail.text)})
        http.cookies.clear()
        after_logout = http.get("/_sessions/")
    assert listed.status_code == 200 and alice in listed.text
    assert refused.status_code == 403
    assert done.status_code == 303
    assert not clean_redis.exists(f"sess:{{{alice}}}")
    assert after_logout.status_code == 401


def test_token_redirect_cannot_leave_the_site(redis_url: str, clean_redis: redis.Redis) -> None:
    with serve(redis_url, token=TOKEN) as http:
        answer = http.get(f"http://localhost//evil.example/?token={TOKEN}")
        http.cookies.clear()
        post = http.post(f"/?token={TOKEN}")  # a query token authenticates GETs only
    assert answer.status_code == 303
    assert answer.headers["location"] == "/evil.example/"
    assert post.status_code == 401


def test_security_headers_on_every_answer(redis_url: str, seeded: dict[str, str]) -> None:
    with serve(redis_url) as http:
        answers = [
            http.get("/"),
            http.get("/stats"),
            http.get(f"/s/{seeded['bob']}"),
            http.get("/missing"),
            http.post(f"/s/{seeded['bob']}/delete"),
        ]
    for answer in answers:
        assert_security_headers(answer.headers)
    csp = answers[0].headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.10.20.30", "::1", "[::1]", "localhost", "LOCALHOST", "::ffff:127.0.0.1"],
)
def test_check_bind_accepts_loopback_without_a_token(host: str) -> None:
    check_bind(host, None)
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host",
    ["0.0.0.0", "::", "192.168.1.10", "10.0.0.5", "example.com", "", "localhost.example.com"],
)
def test_check_bind_refuses_other_hosts_without_a_token(host: str) -> None:
    for token in (None, ""):
        with pytest.raises(ValueError, match="without an access token"):
            check_bind(host, token)
    check_bind(host, TOKEN)


def test_short_tokens_and_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 characters"):
        check_bind("0.0.0.0", "short")
    store = AsyncRedisStore(url="redis://127.0.0.1:1/0")
    with pytest.raises(ConfigError, match="at least 16 characters"):
        create_dashboard(store, token="short")
    with pytest.raises(ConfigError, match="refresh"):
        create_dashboard(store, token=TOKEN, refresh=-1)
    with pytest.raises(ConfigError, match="login_ttl"):
        create_dashboard(store, token=TOKEN, login_ttl=0)
    with pytest.raises(ConfigError, match="exclude each other"):
        create_dashboard(store, token=TOKEN, no_token=True)
    create_dashboard(store, token="", no_token=True)  # empty means none


def login_with(http: TestClient, cookie: str, path: str, **post: Any) -> Response:
    """GET `path` (POST when form data is given) with `cookie` as the only login cookie."""
    http.cookies.clear()
    http.cookies.set(AUTH_COOKIE, cookie)
    return http.post(path, **post) if post else http.get(path)


def test_a_token_is_required_by_default() -> None:
    store = AsyncRedisStore(url="redis://127.0.0.1:1/0")
    for token in (None, ""):
        with pytest.raises(ConfigError, match=r"token: required.*no_token=True"):
            create_dashboard(store, token=token)


@pytest.mark.parametrize(
    "header",
    [
        ("forwarded", "for=203.0.113.9"),
        ("x-forwarded-for", "127.0.0.1"),
        ("x-forwarded-host", "localhost"),
        ("x-forwarded-proto", "http"),
        ("x-real-ip", "127.0.0.1"),
        ("via", "1.1 nginx"),
    ],
)
def test_without_a_token_a_relayed_request_is_refused(
    redis_url: str, seeded: dict[str, str], header: tuple[str, str]
) -> None:
    with serve(redis_url) as http:
        answer = http.get("/", headers=dict([header]))
    assert answer.status_code == 403 and "proxy" in answer.text
    assert seeded["alice"] not in answer.text


def test_without_a_token_uvicorn_trusting_the_proxy_is_refused(
    redis_url: str, seeded: dict[str, str]
) -> None:
    # --forwarded-allow-ips "*": uvicorn makes the peer 127.0.0.1 from X-Forwarded-For.
    store = AsyncRedisStore(url=redis_url)
    # uvicorn types ASGI apps with its own TypedDicts, Starlette with mappings: Any bridges them.
    dashboard: Any = Starlette(routes=[Mount("/_sessions", create_dashboard(store, no_token=True))])
    app: Any = ProxyHeadersMiddleware(dashboard, trusted_hosts="*")
    with TestClient(app, base_url="http://localhost", client=REMOTE) as http:
        answer = http.get("/_sessions/", headers={"x-forwarded-for": "127.0.0.1"})
        http.portal.call(store.aclose)
    assert answer.status_code == 403 and seeded["alice"] not in answer.text


def test_login_cookie_is_scoped_and_expires(redis_url: str, seeded: dict[str, str]) -> None:
    with serve(redis_url, token=TOKEN, mount="/_sessions", login_ttl=600) as http:
        first = http.get("/_sessions/", params={"token": TOKEN})
        cookie = first.headers["set-cookie"].lower()
        assert "path=/_sessions;" in cookie and "max-age=600" in cookie
        assert "expires=" in cookie and "secure" not in cookie
        value = http.cookies[AUTH_COOKIE]
        expiry, _ = value.split(".")
        assert int(expiry) - 600 <= time.time() < int(expiry)
        # The signature covers the expiry: a later one is refused, and so is an old cookie.
        access = Access(TOKEN, login_ttl=600)
        forged = login_with(http, f"{int(expiry) + 9999}." + value.split(".")[1], "/_sessions/")
        expired = login_with(http, access.login_cookie(now=time.time() - 601), "/_sessions/")
        fresh = login_with(http, access.login_cookie(), "/_sessions/")
    assert forged.status_code == 401 and expired.status_code == 401
    assert fresh.status_code == 200


def test_secure_cookies_over_https_or_when_asked(redis_url: str, seeded: dict[str, str]) -> None:
    with serve(redis_url, token=TOKEN) as http:
        https = http.get("https://localhost/", params={"token": TOKEN})
    with serve(redis_url, token=TOKEN, secure_cookies=True) as http:
        asked = http.get("/", params={"token": TOKEN})
    assert "secure" in https.headers["set-cookie"].lower()
    assert "secure" in asked.headers["set-cookie"].lower()
    with serve(redis_url, secure_cookies=True) as http:  # token-less: the CSRF cookie
        csrf = http.get(f"/s/{seeded['alice']}").headers["set-cookie"].lower()
    assert "secure" in csrf and "rs_dashboard_csrf" in csrf


def test_csrf_is_bound_to_the_login(
    redis_url: str, seeded: dict[str, str], clean_redis: redis.Redis
) -> None:
    alice, bob = seeded["alice"], seeded["bob"]
    with serve(redis_url, token=TOKEN) as http:
        http.get("/", params={"token": TOKEN})
        field = csrf_field(http.get(f"/s/{alice}").text)
        # A planted double-submit pair (cookie = field) is not a signed token.
        http.cookies.set(CSRF_COOKIE, "A" * 43)
        planted = http.post(f"/s/{alice}/delete", data={"csrf": "A" * 43})
        # Another login's token does not fit this login.
        mine = http.cookies[AUTH_COOKIE]
        foreign = login_with(
            http,
            Access(TOKEN).login_cookie(now=time.time() - 5),
            f"/s/{alice}/delete",
            data={"csrf": field},
        )
        login_with(http, mine, "/")
        origin = http.post(
            f"/s/{alice}/delete", data={"csrf": field}, headers={"origin": "http://localhost:8080"}
        )
        assert clean_redis.exists(f"sess:{{{alice}}}")
        done = http.post(
            f"/s/{alice}/delete", data={"csrf": field}, headers={"origin": "http://localhost"}
        )
    for refused in (planted, foreign, origin):
        assert refused.status_code == 403
    assert done.status_code == 303 and not clean_redis.exists(f"sess:{{{alice}}}")
    # A script with the header needs no CSRF field: a browser never sends it by itself.
    with serve(redis_url, token=TOKEN) as http:
        script = http.post(f"/s/{bob}/delete", headers={"authorization": f"Bearer {TOKEN}"})
    assert script.status_code == 303 and not clean_redis.exists(f"sess:{{{bob}}}")


def test_without_a_token_a_foreign_origin_cannot_delete(
    redis_url: str, seeded: dict[str, str], clean_redis: redis.Redis
) -> None:
    alice = seeded["alice"]
    with serve(redis_url) as http:
        field = csrf_field(http.get(f"/s/{alice}").text)
        # Another port of 127.0.0.1 planted the cookie: its Origin gives it away.
        sibling = http.post(
            f"/s/{alice}/delete", data={"csrf": field}, headers={"origin": "http://127.0.0.1:9000"}
        )
    assert sibling.status_code == 403 and clean_redis.exists(f"sess:{{{alice}}}")


@pytest.mark.parametrize("handle", ["x", "A" * 42, "A" * 44, "sess:{" + "A" * 37, "A" * 42 + "."])
def test_a_bad_handle_is_a_404_without_a_redis_command(redis_url: str, handle: str) -> None:
    # A dead server: any store call would be a 503.
    with serve("redis://127.0.0.1:1/0", token=TOKEN, connect_options=FAST_FAIL) as http:
        bearer = {"authorization": f"Bearer {TOKEN}"}
        shown = http.get(f"/s/{quote(handle, safe='')}", headers=bearer)
        deleted = http.post(f"/s/{quote(handle, safe='')}/delete", headers=bearer)
        well_formed = http.get("/s/" + "A" * 43, headers=bearer)
    assert shown.status_code == 404 and deleted.status_code == 404
    assert well_formed.status_code == 503
