"""Dashboard access control: loopback-only without a token, token auth, headers, check_bind."""

from __future__ import annotations

import pytest
import redis
from dashkit import TOKEN, csrf_field, serve

from redis_sessions import AsyncRedisStore
from redis_sessions.dashboard import check_bind, create_dashboard
from redis_sessions.dashboard._security import AUTH_COOKIE, SECURITY_HEADERS, is_loopback

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


@pytest.mark.parametrize(("host", "status"), [
    ("localhost:8001", 200), ("127.0.0.1", 200), ("[::1]:8001", 200),
    ("evil.example", 403), ("evil.example:8001", 403), ("10.0.0.1", 403),
])
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
        answer = http.get("/", headers={"host": "sessions.example.com",
                                        "authorization": f"Bearer {TOKEN}"})
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
        answers = [http.get("/"), http.get("/stats"), http.get(f"/s/{seeded['bob']}"),
                   http.get("/missing"), http.post(f"/s/{seeded['bob']}/delete")]
    for answer in answers:
        assert_security_headers(answer.headers)
    csp = answers[0].headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp


@pytest.mark.parametrize("host", ["127.0.0.1", "127.10.20.30", "::1", "[::1]", "localhost",
                                  "LOCALHOST", "::ffff:127.0.0.1"])
def test_check_bind_accepts_loopback_without_a_token(host: str) -> None:
    check_bind(host, None)
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "10.0.0.5", "example.com",
                                  "", "localhost.example.com"])
def test_check_bind_refuses_other_hosts_without_a_token(host: str) -> None:
    for token in (None, ""):
        with pytest.raises(ValueError, match="without an access token"):
            check_bind(host, token)
    check_bind(host, TOKEN)


def test_short_tokens_and_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 characters"):
        check_bind("0.0.0.0", "short")
    store = AsyncRedisStore(url="redis://127.0.0.1:1/0")
    with pytest.raises(ValueError, match="at least 16 characters"):
        create_dashboard(store, token="short")
    with pytest.raises(ValueError, match="refresh"):
        create_dashboard(store, refresh=-1)
    create_dashboard(store, token="")  # empty means none: loopback only
