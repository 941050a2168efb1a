"""CookieConfig / SessionConfig: defaults, validation, from_options."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from redis_sessions import ConfigError, CookieConfig, SessionConfig
from redis_sessions.engine import new_id

from ._support import SECRET


def test_cookie_defaults():
    c = CookieConfig()
    assert (c.name, c.path, c.domain, c.persist, c.http_only) == ("session", "/", None, True, True)
    assert (c.secure, c.same_site, c.partitioned, c.priority) == ("auto", "lax", False, None)


def test_session_defaults():
    cfg = SessionConfig(secret=SECRET)
    assert cfg.cookie == CookieConfig()
    assert cfg.idle_timeout == 86400
    assert cfg.lifetime == 30 * 86400
    assert cfg.rolling is False
    assert cfg.touch_after == 60
    assert cfg.resave is False
    assert cfg.save_uninitialized is False
    assert cfg.unset == "keep"
    assert cfg.genid is new_id
    assert cfg.trust_proxy is False
    assert cfg.on_unavailable == "error"
    assert cfg.retry_after == 5


def test_configs_are_frozen() -> None:
    cfg = SessionConfig(secret=SECRET)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.rolling = True  # type: ignore[misc]  # frozen: the test expects the error
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.cookie.name = "x"  # type: ignore[misc]  # frozen: the test expects the error


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize(
    ("options", "option_name"),
    [
        ({"same_site": "sometimes"}, "same_site"),
        ({"same_site": "Lax"}, "same_site"),
        ({"same_site": "none", "secure": False}, "same_site"),
        ({"partitioned": True, "secure": False}, "partitioned"),
        ({"secure": "yes"}, "secure"),
        ({"priority": "urgent"}, "priority"),
        ({"name": ""}, "name"),
        ({"name": "a b"}, "name"),
        ({"name": "a=b"}, "name"),
        ({"name": "a;b"}, "name"),
        ({"name": "a\r\nb"}, "name"),
        ({"name": 'a"b'}, "name"),
        ({"path": "app"}, "path"),
        ({"path": ""}, "path"),
        ({"path": "/a;b"}, "path"),
        ({"path": "/a\r\nSet-Cookie: x=y"}, "path"),
        ({"domain": "a b.com"}, "domain"),
        ({"domain": "a.com;x"}, "domain"),
        ({"domain": "a.com\n"}, "domain"),
    ],
)
def test_invalid_cookie_option_is_a_config_error_naming_it(options, option_name):
    with pytest.raises(ConfigError, match=option_name):
        CookieConfig(**options)


@pytest.mark.parametrize(
    "options",
    [
        {"same_site": "none", "secure": True},
        {"same_site": "none", "secure": "auto"},
        {"partitioned": True, "secure": "auto"},
        {"priority": "low", "domain": "example.com", "path": "/app"},
    ],
)
def test_valid_cookie_options_are_accepted(options):
    assert CookieConfig(**options)


def _bad_genid() -> str:
    return "not a valid id!"


@pytest.mark.parametrize(
    ("options", "option_name"),
    [
        ({"secret": ""}, "secret"),
        ({"secret": []}, "secret"),
        ({"idle_timeout": 0}, "idle_timeout"),
        ({"idle_timeout": -1}, "idle_timeout"),
        ({"idle_timeout": True}, "idle_timeout"),
        ({"idle_timeout": "60"}, "idle_timeout"),
        ({"lifetime": 0}, "lifetime"),
        ({"lifetime": -3600}, "lifetime"),
        ({"touch_after": -1}, "touch_after"),
        ({"touch_after": True}, "touch_after"),
        ({"touch_after": "60"}, "touch_after"),
        ({"touch_after": None}, "touch_after"),
        ({"unset": "delete"}, "unset"),
        ({"on_unavailable": "ignore"}, "on_unavailable"),
        ({"retry_after": -1}, "retry_after"),
        ({"retry_after": 1.5}, "retry_after"),
        ({"retry_after": "5"}, "retry_after"),
        ({"genid": _bad_genid}, "genid"),
        ({"genid": lambda: "short"}, "genid"),
    ],
)
def test_invalid_session_option_is_a_config_error_naming_it(options, option_name):
    options.setdefault("secret", SECRET)
    with pytest.raises(ConfigError, match=option_name):
        SessionConfig(**options)


def test_valid_non_default_session_options_are_accepted():
    cfg = SessionConfig(
        secret=[SECRET, "o" * 32],
        idle_timeout=lambda data: 10,
        lifetime=None,
        touch_after=0,
        unset="destroy",
        on_unavailable="anonymous",
        retry_after=0,
        genid=lambda: "g" * 40,
    )
    assert cfg.lifetime is None
    assert cfg.genid() == "g" * 40


def test_from_options_builds_a_config_from_flat_cookie_options():
    cfg = SessionConfig.from_options(
        None, {"secret": SECRET, "same_site": "strict", "path": "/app", "rolling": True}
    )
    assert cfg.secret == SECRET
    assert cfg.rolling is True
    assert cfg.cookie == CookieConfig(same_site="strict", path="/app")


def test_from_options_flat_options_override_a_given_cookie():
    cfg = SessionConfig.from_options(
        None, {"secret": SECRET, "cookie": CookieConfig(name="sid"), "domain": "example.com"}
    )
    assert cfg.cookie == CookieConfig(name="sid", domain="example.com")


def test_from_options_accepts_starlette_names():
    cfg = SessionConfig.from_options(
        None,
        {"secret_key": SECRET, "session_cookie": "sid", "max_age": 600, "https_only": True},
    )
    assert cfg.secret == SECRET
    assert cfg.cookie.name == "sid"
    assert cfg.idle_timeout == 600
    assert cfg.cookie.secure is True
    assert cfg.cookie.persist is True


def test_from_options_https_only_false_keeps_auto_secure():
    cfg = SessionConfig.from_options(None, {"secret_key": SECRET, "https_only": False})
    assert cfg.cookie.secure == "auto"


def test_from_options_max_age_none_makes_a_browser_session_cookie():
    cfg = SessionConfig.from_options(None, {"secret_key": SECRET, "max_age": None})
    assert cfg.cookie.persist is False
    assert cfg.idle_timeout == 14 * 86400  # the server-side TTL: Starlette's max_age default


def test_from_options_over_an_existing_config_keeps_what_is_not_given():
    base = SessionConfig(
        secret=SECRET, cookie=CookieConfig(name="sid", domain="example.com"), resave=True
    )
    cfg = SessionConfig.from_options(base, {"rolling": True, "same_site": "strict"})
    assert cfg.secret == SECRET
    assert cfg.resave is True
    assert cfg.rolling is True
    assert cfg.cookie == CookieConfig(name="sid", domain="example.com", same_site="strict")
    assert base.rolling is False  # the base config is untouched


def test_from_options_over_an_existing_config_with_starlette_names():
    base = SessionConfig(secret=SECRET, cookie=CookieConfig(name="sid"))
    cfg = SessionConfig.from_options(base, {"max_age": None, "session_cookie": "other"})
    assert cfg.cookie.name == "other"
    assert cfg.cookie.persist is False
    assert cfg.idle_timeout == base.idle_timeout


def test_from_options_over_an_existing_config_with_no_options_is_equal():
    base = SessionConfig(secret=SECRET, rolling=True)
    assert SessionConfig.from_options(base, {}) == base


@pytest.mark.parametrize("config", [None, SessionConfig(secret=SECRET)])
def test_from_options_unknown_option_is_a_config_error_naming_it(config):
    with pytest.raises(ConfigError, match="bogus_option"):
        SessionConfig.from_options(config, {"secret": SECRET, "bogus_option": 1})


@pytest.mark.parametrize("config", [None, SessionConfig(secret=SECRET)])
def test_from_options_invalid_value_is_a_config_error(config):
    with pytest.raises(ConfigError, match="same_site"):
        SessionConfig.from_options(config, {"secret": SECRET, "same_site": "bogus"})


def test_from_options_without_a_secret_is_a_config_error():
    with pytest.raises(ConfigError, match="secret"):
        SessionConfig.from_options(None, {"rolling": True})


# -- Starlette's names bring Starlette's defaults (README, the drop-in paragraph) -----------


def test_starlette_spelling_brings_starlettes_defaults():
    cfg = SessionConfig.from_options(None, {"secret_key": SECRET})
    assert cfg.idle_timeout == 14 * 86400
    assert cfg.rolling is True
    assert cfg.unset == "destroy"
    assert cfg.lifetime == 30 * 86400
    assert cfg.cookie.secure == "auto"  # https_only=False: Secure exactly on HTTPS


def test_our_spelling_keeps_our_defaults():
    assert SessionConfig.from_options(None, {"secret": SECRET}) == SessionConfig(secret=SECRET)


def test_options_given_win_over_starlettes_defaults():
    cfg = SessionConfig.from_options(
        None,
        {
            "secret_key": SECRET,
            "rolling": False,
            "unset": "keep",
            "idle_timeout": 600,
            "lifetime": None,
        },
    )
    assert (cfg.rolling, cfg.unset, cfg.idle_timeout, cfg.lifetime) == (False, "keep", 600, None)


def test_a_max_age_beyond_30_days_is_not_cut_by_the_absolute_lifetime():
    cfg = SessionConfig.from_options(None, {"secret_key": SECRET, "max_age": 90 * 86400})
    assert cfg.idle_timeout == cfg.lifetime == 90 * 86400


@pytest.mark.parametrize("max_age", [-1, 0, True, "3600", [1]])
def test_a_nonsense_max_age_is_a_config_error_naming_it(max_age):
    with pytest.raises(ConfigError, match=r"^max_age: "):
        SessionConfig.from_options(None, {"secret_key": SECRET, "max_age": max_age})


def test_a_non_bool_https_only_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match=r"^https_only: "):
        SessionConfig.from_options(None, {"secret_key": SECRET, "https_only": "yes"})


@pytest.mark.parametrize(
    ("old", "new", "value"),
    [
        ("secret_key", "secret", SECRET),
        ("max_age", "idle_timeout", 60),
        ("session_cookie", "name", "sid"),
    ],
)
def test_an_option_under_both_names_is_a_config_error(old, new, value):
    options = {"secret": SECRET, old: value, new: value}
    with pytest.raises(ConfigError, match=rf"^{old}: give {old} or {new}, not both"):
        SessionConfig.from_options(None, options)


@pytest.mark.parametrize(
    ("options", "option_name"),
    [
        ({"name": "a\x01b"}, "name"),
        ({"name": "a\x7fb"}, "name"),
        ({"name": "sessión"}, "name"),
        ({"name": "a(b)"}, "name"),
        ({"name": "a/b"}, "name"),
        ({"name": "a\tb"}, "name"),
        ({"path": "/a\x00b"}, "path"),
        ({"path": "/a\x7f"}, "path"),
        ({"path": "/café"}, "path"),
        ({"domain": "a\x01.com"}, "domain"),
        ({"domain": "exämple.com"}, "domain"),
        ({"domain": "a.com,b.com"}, "domain"),
        ({"domain": ""}, "domain"),
    ],
)
def test_control_and_non_ascii_characters_in_cookie_options_are_refused(options, option_name):
    # They cannot inject a header (CR/LF were refused already) but made an invalid Set-Cookie
    # that the HTTP server refused with a 500 on every response that set the cookie.
    with pytest.raises(ConfigError, match=option_name):
        CookieConfig(**options)


@pytest.mark.parametrize(
    ("options", "option_name"),
    [
        ({"name": "__Host-session", "secure": False}, "secure"),
        ({"name": "__Host-session", "path": "/app"}, "path"),
        ({"name": "__Host-session", "domain": "example.com"}, "domain"),
        ({"name": "__host-session", "domain": "example.com"}, "domain"),
        ({"name": "__Secure-session", "secure": False}, "secure"),
        ({"name": "__SECURE-session", "secure": False}, "secure"),
    ],
)
def test_cookie_prefix_rules_are_enforced(options, option_name):
    with pytest.raises(ConfigError, match=option_name):
        CookieConfig(**options)


@pytest.mark.parametrize("name", ["__Host-session", "__Secure-session"])
def test_a_prefixed_cookie_is_always_secure(name):
    # 'auto' would drop Secure on plain HTTP, and the browser would then drop the cookie.
    assert CookieConfig(name=name).secure is True
    assert CookieConfig(name=name, secure=True).secure is True
    assert CookieConfig(name="__Secure-s", path="/app", domain="example.com").secure is True


@pytest.mark.parametrize(
    "option", ["idle_timeout", "lifetime", "lock_ttl", "lock_timeout", "touch_after"]
)
@pytest.mark.parametrize("value", [0.0004, 1e12, float("inf"), float("nan")])
def test_durations_under_a_millisecond_or_over_ten_years_are_refused(option, value):
    # Under 1 ms they truncate to 0 ms (a save becomes a delete, SET PX 0 an error); from 1e14
    # ms on, Lua writes the number as '1e+14' and PEXPIRE refuses it after the HSET.
    with pytest.raises(ConfigError, match=option):
        SessionConfig(secret=SECRET, **{option: value})


@pytest.mark.parametrize("option", ["lock_timeout", "touch_after"])
def test_durations_that_may_be_zero_accept_zero(option):
    zero: dict[str, Any] = {option: 0}
    assert getattr(SessionConfig(secret=SECRET, **zero), option) == 0


def test_durations_at_the_bounds_are_accepted():
    ten_years = 10 * 365 * 86400
    cfg = SessionConfig(
        secret=SECRET,
        idle_timeout=0.001,
        lifetime=ten_years,
        lock_ttl=0.001,
        lock_timeout=ten_years,
        touch_after=0.001,
    )
    assert (cfg.idle_timeout, cfg.lifetime) == (0.001, ten_years)
