"""Cloud Foundry: the store finds a bound Redis service in ``$VCAP_SERVICES``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from redis_sessions import RedisStore
from redis_sessions._urls import url_from_vcap


def vcap(*services: dict[str, Any], label: str = "p.redis") -> str:
    return json.dumps({label: list(services)})


@pytest.mark.parametrize(
    ("services", "url"),
    [
        (
            vcap({"label": "p.redis", "credentials": {"uri": "redis://:pw@10.0.0.5:6379"}}),
            "redis://:pw@10.0.0.5:6379",
        ),
        (
            vcap(
                {
                    "name": "sessions",
                    "tags": ["Redis"],
                    "credentials": {"host": "10.0.0.5", "port": 6380, "password": "p w/@"},
                },
                label="user-provided",
            ),
            "redis://:p%20w%2F%40@10.0.0.5:6380/0",
        ),
        (
            vcap({"label": "valkey", "credentials": {"hostname": "h", "port": 1, "tls_port": 2}}),
            "rediss://h:2/0",
        ),
        (
            json.dumps(
                {
                    "mysql": [{"label": "mysql", "credentials": {"uri": "mysql://x"}}],
                    "redis": [{"label": "redis", "credentials": {"url": "rediss://r:6380/1"}}],
                }
            ),
            "rediss://r:6380/1",
        ),
        (vcap({"label": "mysql", "credentials": {"uri": "mysql://x"}}), None),
        (vcap({"label": "redis", "credentials": "not a dict"}), None),
        (vcap({"label": "redis", "credentials": {"port": 1}}), None),
        ("{not json", None),
        ("[]", None),
        (json.dumps({"redis": "nope"}), None),
        ("", None),
    ],
)
def test_url_from_vcap(services: str, url: str | None) -> None:
    assert url_from_vcap(services) == url


def test_store_connects_to_the_bound_service(
    make_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_server(password="cf-secret")
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv(
        "VCAP_SERVICES",
        vcap(
            {
                "label": "p.redis",
                "credentials": {"host": "127.0.0.1", "port": server.port, "password": "cf-secret"},
            }
        ),
    )
    store = RedisStore()  # no URL, no client: found in VCAP_SERVICES
    try:
        store.set("h1", {"a": 1})
        assert store.get("h1") == {"a": 1}
    finally:
        store.close()
