"""The dashboard's pages against a real server: list, search, detail, delete, stats."""

from __future__ import annotations

import re

import pytest
import redis

from redis_sessions.dashboard import _app
from tests.dashboard.dashkit import csrf_cookie, csrf_field, handle_links, seed, serve


def test_list_shows_every_session_with_stats_and_refresh(
    redis_url: str, seeded: dict[str, str]
) -> None:
    with serve(redis_url, refresh=7) as http:
        page = http.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert sorted(handle_links(page.text)) == sorted(seeded.values())
    for name in ("alice", "bob", "alicia", "anonymous"):
        assert name in page.text
    assert '<meta http-equiv="refresh" content="7; url=/">' in page.text
    assert re.search(r'<div class="k">Sessions</div><div class="v">4</div>', page.text)
    assert re.search(r'Signed-in users</div><div class="v">3</div>', page.text)
    assert "?refresh=0" in page.text  # the pause link


def test_pausing_refresh_keeps_the_filters(redis_url: str, seeded: dict[str, str]) -> None:
    with serve(redis_url) as http:
        page = http.get("/", params={"user": "ali", "refresh": "0"}).text
        off = serve_without_refresh(redis_url)
    assert 'http-equiv="refresh"' not in page
    assert "Auto-refresh paused" in page
    assert 'href="/?user=ali"' in page  # resume keeps the search
    assert 'name="refresh" value="0"' in page  # a new search stays paused
    assert "Auto-refresh off" in off


def serve_without_refresh(redis_url: str) -> str:
    with serve(redis_url, refresh=0) as http:
        return http.get("/").text


def test_search_by_handle_prefix_and_by_key(redis_url: str, seeded: dict[str, str]) -> None:
    alice = seeded["alice"]
    with serve(redis_url) as http:
        by_prefix = http.get("/", params={"match": alice[:6]}).text
        by_key = http.get("/", params={"match": f"sess:{{{alice}}}"}).text
        nothing = http.get("/", params={"match": "*"}).text  # a glob character matches literally
    assert handle_links(by_prefix) == [alice]
    assert handle_links(by_key) == [alice]
    assert handle_links(nothing) == []
    assert "No sessions match." in nothing


def test_search_by_user_substring_or_exact(redis_url: str, seeded: dict[str, str]) -> None:
    with serve(redis_url) as http:
        loose = http.get("/", params={"user": "ALI"}).text
        exact = http.get("/", params={"user": "alice", "exact": "1"}).text
        nested = http.get("/", params={"user": "bob", "exact": "1"}).text
    assert sorted(handle_links(loose)) == sorted([seeded["alice"], seeded["alicia"]])
    assert handle_links(exact) == [seeded["alice"]]
    assert handle_links(nested) == [seeded["bob"]]  # a dict user is known by its name
    assert "2 sessions matching" in loose


def test_limit_shows_a_more_note(redis_url: str, clean_redis: redis.Redis) -> None:
    seed(redis_url, [{"user": f"user{i}"} for i in range(5)])
    with serve(redis_url) as http:
        limited = http.get("/", params={"limit": "2"}).text
        bad = http.get("/", params={"limit": "lots"}).text
    assert len(handle_links(limited)) == 2
    assert "there are more" in limited
    assert 'href="/?limit=10"' in limited
    assert len(handle_links(bad)) == 5 and "there are more" not in bad


def test_a_slow_scan_stops_at_its_time_budget(
    redis_url: str, seeded: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_app, "LIST_BUDGET_S", -1.0)
    monkeypatch.setattr(_app, "STATS_BUDGET_S", -1.0)
    with serve(redis_url) as http:
        listed = http.get("/").text
        stats = http.get("/stats").text
    assert len(handle_links(listed)) == 1
    assert "results are partial" in listed
    assert "(partial)" in listed
    assert "figures cover those sessions only" in stats


def test_detail_shows_metadata_and_pretty_data(redis_url: str, seeded: dict[str, str]) -> None:
    alice = seeded["alice"]
    with serve(redis_url) as http:
        page = http.get(f"/s/{alice}")
        cookie = csrf_cookie(http)
        again = http.get(f"/s/{alice}")  # the browser's CSRF cookie is kept
    assert "set-cookie" not in again.headers and csrf_field(again.text) == cookie
    assert page.status_code == 200
    text = page.text
    assert f"sess:{{{alice}}}" in text
    assert "&quot;cart&quot;: [\n    1," in text  # pretty-printed
    assert "&quot;user&quot;: &quot;alice&quot;" in text  # JSON, escaped
    assert "Expires in" in text and "UTC" in text
    assert 'href="/?user=alice&amp;exact=1"' in text
    assert cookie and csrf_field(text) == cookie
    set_cookie = page.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie and "path=/" in set_cookie


def test_detail_of_a_missing_session_is_404(redis_url: str, clean_redis: redis.Redis) -> None:
    with serve(redis_url) as http:
        page = http.get("/s/NoSuchHandle")
        unknown = http.get("/nowhere")
        wrong_method = http.get("/s/NoSuchHandle/delete")
    assert page.status_code == 404 and "No such session" in page.text
    assert unknown.status_code == 404
    assert wrong_method.status_code == 405


def test_undecodable_payload_is_described_not_shown(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    handle = "c" * 43
    clean_redis.hset(f"sess:{{{handle}}}", mapping={"user": b"\xff not json"})
    with serve(redis_url) as http:
        page = http.get(f"/s/{handle}").text
        stats = http.get("/stats").text
    assert "could not be decoded" in page
    assert "<dt>Created</dt><dd>—</dd>" in page
    assert ">unknown</text>" in stats  # no creation time: an "unknown" age bucket


def test_delete_with_the_csrf_token(
    redis_url: str, seeded: dict[str, str], clean_redis: redis.Redis
) -> None:
    bob = seeded["bob"]
    with serve(redis_url) as http:
        token = csrf_field(http.get(f"/s/{bob}").text)
        done = http.post(f"/s/{bob}/delete", data={"csrf": token})
        assert done.status_code == 303
        assert done.headers["location"] == f"/?flash=deleted&h={bob[:8]}"
        after = http.get(done.headers["location"]).text
        again = http.post(f"/s/{bob}/delete", data={"csrf": token})
        gone = http.get(again.headers["location"]).text
    assert not clean_redis.exists(f"sess:{{{bob}}}")
    assert f"Session {bob[:8]}… deleted" in after
    assert bob not in handle_links(after)
    assert "no longer existed" in gone
    # The refresh drops the flash message.
    assert '<meta http-equiv="refresh" content="10; url=/">' in after


@pytest.mark.parametrize(
    "case", ["no field", "wrong field", "no cookie", "not a form", "too big", "cross-site"]
)
def test_delete_without_a_valid_csrf_token_is_refused(
    redis_url: str, seeded: dict[str, str], clean_redis: redis.Redis, case: str
) -> None:
    alice = seeded["alice"]
    with serve(redis_url) as http:
        token = csrf_field(http.get(f"/s/{alice}").text)
        url = f"/s/{alice}/delete"
        if case == "no field":
            answer = http.post(url, data={"other": "1"})
        elif case == "wrong field":
            answer = http.post(url, data={"csrf": token[:-1] + ("A" if token[-1] != "A" else "B")})
        elif case == "no cookie":
            http.cookies.clear()
            answer = http.post(url, data={"csrf": token})
        elif case == "not a form":
            answer = http.post(url, json={"csrf": token})
        elif case == "too big":
            answer = http.post(url, data={"pad": "x" * 5000, "csrf": token})
        else:
            answer = http.post(url, data={"csrf": token}, headers={"sec-fetch-site": "cross-site"})
    assert answer.status_code == 403
    assert clean_redis.exists(f"sess:{{{alice}}}")


def test_stats_page_has_charts_and_top_users(
    redis_url: str, seeded: dict[str, str], clean_redis: redis.Redis
) -> None:
    clean_redis.persist(f"sess:{{{seeded['anonymous']}}}")  # one session without expiry
    with serve(redis_url) as http:
        page = http.get("/stats")
        paused = http.get("/stats", params={"refresh": "0"}).text
    assert page.status_code == 200
    assert page.text.count("<svg") == 3
    assert "Time to live" in page.text and "Age (since creation)" in page.text
    assert "no expiry" in page.text
    assert 'href="/?user=alice&amp;exact=1"' in page.text
    assert 'http-equiv="refresh"' in page.text and 'http-equiv="refresh"' not in paused


def test_stats_of_an_empty_store(redis_url: str, clean_redis: redis.Redis) -> None:
    with serve(redis_url) as http:
        page = http.get("/stats").text
        listed = http.get("/").text
    assert "No signed-in users." in page and "<svg" in page
    assert "No sessions match." in listed


def test_mounted_under_a_prefix_every_link_keeps_it(
    redis_url: str, seeded: dict[str, str], clean_redis: redis.Redis
) -> None:
    alice = seeded["alice"]
    with serve(redis_url, mount="/_sessions") as http:
        listed = http.get("/_sessions/").text
        detail = http.get(f"/_sessions/s/{alice}")
        done = http.post(f"/_sessions/s/{alice}/delete", data={"csrf": csrf_field(detail.text)})
        stats = http.get("/_sessions/stats").text
    hrefs = re.findall(r'(?:href|action)="([^"]*)"', listed + detail.text + stats)
    assert hrefs and all(h.startswith("/_sessions/") for h in hrefs), hrefs
    assert f'href="/_sessions/s/{alice}"' in listed
    assert 'url=/_sessions/"' in listed
    assert "path=/_sessions;" in detail.headers["set-cookie"].lower()
    assert done.status_code == 303 and done.headers["location"].startswith("/_sessions/?flash=")
    assert not clean_redis.exists(f"sess:{{{alice}}}")


def test_hostile_user_values_are_escaped(redis_url: str, clean_redis: redis.Redis) -> None:
    [handle] = seed(
        redis_url,
        [{"user": "<script>alert(1)</script>", "</pre><script>x()</script>": "\"'><img src=x>"}],
    )
    with serve(redis_url) as http:
        listed = http.get("/").text
        detail = http.get(f"/s/{handle}").text
        searched = http.get("/", params={"user": '"><script>'}).text
        stats = http.get("/stats").text
    for page in (listed, detail, searched, stats):
        assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listed
    assert "&lt;/pre&gt;&lt;script&gt;x()" in detail
    assert 'value="&quot;&gt;&lt;script&gt;"' in searched


def test_redis_down_is_a_503_page(redis_url: str) -> None:
    from redis_sessions.server import free_port

    dead = f"redis://127.0.0.1:{free_port()}/0"
    from tests.dashboard.dashkit import FAST_FAIL

    with serve(dead, connect_options=FAST_FAIL) as http:
        listed = http.get("/", params={"user": "x"})
        detail = http.get("/s/" + "a" * 43)
    for page in (listed, detail):
        assert page.status_code == 503
        assert page.headers["retry-after"] == "5"
        assert "Redis is unavailable" in page.text and "Traceback" not in page.text
        assert page.headers["x-frame-options"] == "DENY"
    assert 'content="5; url=/?user=x"' in listed.text
