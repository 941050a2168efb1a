"""Session ids, storage handles, reading the Cookie header and rendering Set-Cookie."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from redis_sessions._cookies import MAX_CANDIDATES, MAX_HEADER_SCAN, cookie_values, render_cookie
from redis_sessions.engine import Signer, handle_for, is_well_formed, new_id

from ._support import SECRET, make_engine

URLSAFE = re.compile(r"[A-Za-z0-9_-]+")

# -- ids and handles ------------------------------------------------------------------------


def test_new_id_is_43_url_safe_characters_of_256_bits():
    sid = new_id()
    assert len(sid) == 43
    assert URLSAFE.fullmatch(sid)
    assert len(base64.urlsafe_b64decode(sid + "=")) == 32
    assert is_well_formed(sid)


def test_new_ids_are_unique_over_a_thousand_draws():
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000


def test_new_ids_use_the_whole_alphabet():
    # 1000 ids of 43 chars: every one of the 64 symbols appears (a weak-RNG smoke test).
    symbols = set("".join(new_id() for _ in range(1000)))
    assert len(symbols) == 64


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a" * 22, True),
        ("a" * 21, False),
        ("a" * 128, True),
        ("a" * 129, False),
        ("", False),
        ("Az09_-" * 4, True),
        ("a" * 30 + "+", False),
        ("a" * 30 + "/", False),
        ("a" * 30 + "=", False),
        ("a" * 30 + ".", False),
        ("a" * 30 + "\n", False),
        ("\n" + "a" * 30, False),
        ("a" * 15 + " " + "a" * 15, False),
        ("a" * 30 + "\x00", False),
        ("é" * 30, False),
        ("٣" * 30, False),  # a Unicode digit is not an ASCII digit
    ],
)
def test_is_well_formed_accepts_only_22_to_128_url_safe_characters(value, expected):
    assert is_well_formed(value) is expected


def test_handle_is_deterministic_sha256_of_the_id():
    sid = new_id()
    expected = base64.urlsafe_b64encode(hashlib.sha256(sid.encode()).digest()).rstrip(b"=")
    assert handle_for(sid) == handle_for(sid) == expected.decode()
    assert len(handle_for(sid)) == 43


def test_handle_differs_from_the_id_and_never_contains_it():
    for _ in range(200):
        sid = new_id()
        handle = handle_for(sid)
        assert handle != sid
        assert sid not in handle
        assert sid[:22] not in handle


def test_different_ids_have_different_handles():
    assert len({handle_for(new_id()) for _ in range(200)}) == 200


# -- cookie_values --------------------------------------------------------------------------


def test_no_header_gives_no_values():
    assert cookie_values(None, "session") == []
    assert cookie_values("", "session") == []


def test_value_of_the_named_cookie_is_found_among_others():
    header = "theme=dark; session=abc.def; lang=fr"
    assert cookie_values(header, "session") == ["abc.def"]


def test_cookie_with_a_name_that_merely_contains_ours_is_ignored():
    assert cookie_values("my_session=x; session_old=y; Session=z", "session") == []


def test_several_same_name_cookies_are_returned_in_order():
    assert cookie_values("session=first; a=1; session=second", "session") == ["first", "second"]


def test_first_valid_of_several_same_name_cookies_wins():
    signer = Signer(SECRET)
    first, second = new_id(), new_id()
    engine = make_engine()
    header = f"session={signer.sign(first)}; session={signer.sign(second)}"
    assert engine.read_cookie(header).session_id == first


def test_invalid_first_cookie_falls_back_to_the_next_valid_one():
    sid = new_id()
    header = f"session=forged.value; session={Signer(SECRET).sign(sid)}"
    assert make_engine().read_cookie(header).session_id == sid


def test_quotes_around_a_value_are_stripped():
    assert cookie_values('session="abc.def"', "session") == ["abc.def"]
    sid = new_id()
    incoming = make_engine().read_cookie(f'session="{Signer(SECRET).sign(sid)}"')
    assert incoming.session_id == sid


@pytest.mark.parametrize("value", ['"', '"abc', 'abc"'])
def test_unbalanced_quote_is_left_verbatim(value):
    assert cookie_values(f"session={value}", "session") == [value]


def test_whitespace_around_names_and_values_is_ignored():
    assert cookie_values("  a=1 ;   session =  abc  ;b=2", "session") == ["abc"]


@pytest.mark.parametrize(
    "header",
    [
        ";",
        ";;;;",
        "   ",
        "session",
        "session;",
        "=session",
        "\r\n",
        "\x00",
        "é=ü; ß",
    ],
)
def test_garbage_header_gives_no_values(header):
    assert cookie_values(header, "session") == []


@pytest.mark.parametrize(
    "header",
    [
        "session=",
        "session=;",
        "session=   ",
        "session=\x00",
        "session=a\r\nSet-Cookie: x=y",
        "session=éé.ùù",
        "session=a b.c d",
        "session=a;b.c",
        "session=" + "A" * 300,
        "session=.",
    ],
)
def test_garbage_cookie_value_is_present_but_never_verifies(header):
    incoming = make_engine().read_cookie(header)
    assert incoming.cookie_present is True
    assert incoming.session_id is None
    assert incoming.handle is None


def test_signed_value_whose_id_is_not_well_formed_is_rejected():
    # A correctly signed id of the wrong shape (here too short) is never looked up.
    header = "session=" + Signer(SECRET).sign("short")
    incoming = make_engine().read_cookie(header)
    assert incoming.cookie_present is True
    assert incoming.handle is None


def test_valid_cookie_after_9000_characters_of_junk_is_not_found():
    sid = new_id()
    signed = Signer(SECRET).sign(sid)
    header = "x" * 9000 + "; session=" + signed
    assert cookie_values(header, "session") == []
    assert make_engine().read_cookie(header).cookie_present is False


def test_valid_cookie_inside_the_scanned_prefix_is_found():
    sid = new_id()
    signed = Signer(SECRET).sign(sid)
    tail = "; session=" + signed
    header = "x" * (MAX_HEADER_SCAN - len(tail)) + tail
    assert len(header) == MAX_HEADER_SCAN
    assert cookie_values(header, "session") == [signed]
    assert cookie_values(header + "junk", "session") == [signed]


def test_one_mebibyte_header_is_only_scanned_over_its_first_8192_characters():
    header = "session=a; " * (1024 * 1024 // 11)
    assert len(header) > 1_000_000
    found = cookie_values(header, "session")
    assert found == ["a"] * MAX_CANDIDATES
    # Only the prefix is split: a cookie that exists once, after the prefix, is never seen.
    assert cookie_values(header + "other=1", "other") == []


def test_at_most_four_candidates_are_returned():
    header = "; ".join(f"session=v{i}" for i in range(10))
    assert cookie_values(header, "session") == ["v0", "v1", "v2", "v3"]


def test_valid_cookie_after_four_bad_candidates_is_not_tried():
    sid = new_id()
    header = "; ".join(["session=bad"] * 4 + ["session=" + Signer(SECRET).sign(sid)])
    incoming = make_engine().read_cookie(header)
    assert incoming.cookie_present is True
    assert incoming.session_id is None


# -- render_cookie --------------------------------------------------------------------------


def _attrs(cookie: str) -> list[str]:
    return cookie.split("; ")


def test_default_cookie_has_path_httponly_and_lax_and_no_expiry():
    cookie = render_cookie("session", "v")
    assert _attrs(cookie) == ["session=v", "Path=/", "HttpOnly", "SameSite=Lax"]


def test_max_age_comes_with_a_matching_expires():
    cookie = render_cookie("session", "v", max_age=3600, now=0)
    assert "Max-Age=3600" in _attrs(cookie)
    assert "Expires=Thu, 01 Jan 1970 01:00:00 GMT" in _attrs(cookie)


def test_expires_uses_the_current_time_when_now_is_not_given():
    cookie = render_cookie("session", "v", max_age=60)
    expires = next(a for a in _attrs(cookie) if a.startswith("Expires="))
    assert expires.endswith(" GMT")
    assert "1970" not in expires


@pytest.mark.parametrize("max_age", [0, -5])
def test_deletion_cookie_has_max_age_zero_and_1970_expiry(max_age):
    cookie = render_cookie("session", "", max_age=max_age)
    attrs = _attrs(cookie)
    assert attrs[0] == "session="
    assert "Max-Age=0" in attrs
    assert "Expires=Thu, 01 Jan 1970 00:00:00 GMT" in attrs


def test_session_cookie_has_neither_max_age_nor_expires():
    cookie = render_cookie("session", "v", max_age=None)
    assert "Max-Age" not in cookie
    assert "Expires" not in cookie


def test_every_attribute_is_rendered_when_set():
    cookie = render_cookie(
        "sid",
        "v",
        path="/app",
        domain="example.com",
        max_age=10,
        http_only=True,
        secure=True,
        same_site="strict",
        partitioned=True,
        priority="high",
        now=0,
    )
    assert _attrs(cookie) == [
        "sid=v",
        "Path=/app",
        "Domain=example.com",
        "Max-Age=10",
        "Expires=Thu, 01 Jan 1970 00:00:10 GMT",
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Partitioned",
        "Priority=High",
    ]


@pytest.mark.parametrize(
    ("same_site", "shown"), [("lax", "Lax"), ("strict", "Strict"), ("none", "None")]
)
def test_same_site_is_capitalised(same_site, shown):
    assert f"SameSite={shown}" in _attrs(render_cookie("s", "v", same_site=same_site))


def test_disabled_attributes_are_omitted():
    cookie = render_cookie("s", "v", http_only=False, secure=False, same_site=None)
    assert _attrs(cookie) == ["s=v", "Path=/"]
