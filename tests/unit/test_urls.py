"""Redis URLs of every topology: what `parse_target` makes of them, and the clear refusal of a
malformed one (without its password)."""

from __future__ import annotations

from typing import Any

import pytest

from redis_sessions._errors import ConfigError
from redis_sessions._urls import parse_target


@pytest.mark.parametrize(
    ("url", "kind", "nodes", "service", "kwargs", "sentinel_kwargs"),
    [
        (
            "redis+sentinel://127.0.0.1:1,127.0.0.1:2,[::1]:3/mymaster/2",
            "sentinel",
            (("127.0.0.1", 1), ("127.0.0.1", 2), ("::1", 3)),
            "mymaster",
            {"db": 2},
            {},
        ),
        (
            "redis+sentinel://app:p%40ss@h1,h2:26380/svc?sentinel_password=s%40&sentinel_username=mon",
            "sentinel",
            (("h1", 6379), ("h2", 26380)),
            "svc",
            {"username": "app", "password": "p@ss"},
            {"password": "s@", "username": "mon"},
        ),
        (
            "rediss+sentinel://h:1/svc?ssl_ca_certs=/ca.pem",
            "sentinel",
            (("h", 1),),
            "svc",
            {"ssl_ca_certs": "/ca.pem", "ssl": True},
            {"ssl_ca_certs": "/ca.pem", "ssl": True},
        ),
        (
            "redis+cluster://u:pw@a:7000,b:7001/",
            "cluster",
            (("a", 7000), ("b", 7001)),
            "",
            {"username": "u", "password": "pw"},
            None,
        ),
        (
            "rediss+cluster://a:7000?ssl_cert_reqs=none",
            "cluster",
            (("a", 7000),),
            "",
            {"ssl_cert_reqs": "none", "ssl": True},
            None,
        ),
    ],
)
def test_parse_target(
    url: str,
    kind: str,
    nodes: tuple[tuple[str, int], ...],
    service: str,
    kwargs: dict[str, Any],
    sentinel_kwargs: dict[str, Any] | None,
) -> None:
    target = parse_target(url)
    assert (target.kind, target.nodes, target.service) == (kind, nodes, service)
    assert target.kwargs == kwargs
    assert target.sentinel_kwargs == sentinel_kwargs


def test_cluster_flag_turns_a_plain_url_into_startup_nodes() -> None:
    target = parse_target("redis://a:7000,b:7001", cluster=True)
    assert (target.kind, target.nodes) == ("cluster", (("a", 7000), ("b", 7001)))
    assert parse_target("redis://a:7000/0").kind == "single"
    assert parse_target("unix:///tmp/r.sock").kind == "single"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel://h:1", "without a service name"),
        ("redis+cluster://h:1/2", "only database 0"),
        ("redis+cluster:///", "no host"),
        ("mysql://h/x", "unknown Redis URL scheme 'mysql'"),
        ("h:6379", "no scheme"),
        ("redis+cluster://user:hunter2@h:port/", "bad host:port"),
    ],
)
def test_bad_urls_are_refused_clearly_without_the_password(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_target(url)
    assert "hunter2" not in str(caught.value)
