"""Pure pieces of the CLI: the URL shown in messages. Units, buckets and the top-users counter
are tested with `redis_sessions._report` in tests/unit/test_report.py."""

from __future__ import annotations

import pytest

from redis_sessions.cli._common import safe_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("redis://:pw@h:1/0", "redis://:***@h:1/0"),
        ("rediss://user:p%40ss@h:1/2", "rediss://user:***@h:1/2"),
        ("redis://user@h:1/2", "redis://user@h:1/2"),
        ("redis://:a/b@h:1/0", "redis://:***@h:1/0"),  # an unencoded "/" in the password
        (
            "unix:///run/rs/redis.sock?db=0&password=s3cr3t",
            "unix:///run/rs/redis.sock?db=0&password=***",
        ),
        (
            "redis+sentinel://:pw@h1:26379,h2:26379/mymaster?sentinel_password=SPW&db=1",
            "redis+sentinel://:***@h1:26379,h2:26379/mymaster?sentinel_password=***&db=1",
        ),
        (
            "rediss://h/0?ssl_password=k&ssl_cert_reqs=none&Sentinel_Password=x&auth_token=t&x=1",
            "rediss://h/0?ssl_password=***&ssl_cert_reqs=none&Sentinel_Password=***&auth_token=***&x=1",
        ),
        ("user:pw@h:1", "user:***@h:1"),  # no scheme at all
    ],
)
def test_safe_url_masks_every_password_form(url: str, shown: str) -> None:
    assert safe_url(url) == shown
