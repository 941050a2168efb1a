"""Store fixtures: one sync-call interface over the sync, asyncio and in-memory stores.

`store` / `make_store` run every test for "sync" (`RedisStore` on the test server), "async"
(`AsyncRedisStore` driven on one event loop per test), "memory" (`MemoryStore`), "acl" (a
`RedisStore` connected as the least-privilege session user of `redis_sessions.acl`, on a server of
its own), and the topologies, each sync and async: "unix" (the test server's unix socket), "tls"
(``rediss://`` through a TLS proxy to it), "sentinel" (through the session's Sentinel group) and
"cluster" (on the session's 6-node Cluster); "sync-resp3" and "async-resp3" are "sync" and "async"
speaking RESP3 instead of the pinned RESP2. `redis_store` / `make_redis_store` are the same
factory for the Redis-specific tests (command counts, server settings) on one server: "sync",
"async" and "acl" only. An autouse spy fails any store test that deserialises with pickle.
"""

from __future__ import annotations

import pickle  # noqa: TID251 - only to spy on it: nothing may call it
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import redis

from redis_sessions.server import LocalServer
from tests.store.storekit import AclServer, MakeStore, StoreFactory, StoreProxy, acl_denials
from tests.support.tlsproxy import TLSProxy, throwaway_pki

__all__ = ["MakeStore", "StoreProxy"]


@pytest.fixture(scope="session")
def acl_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AclServer]:
    """A server of the "acl" runner's own, where stores connect as session users."""
    server = LocalServer(data_dir=tmp_path_factory.mktemp("acl-server"), appendonly=False)
    server.start()
    try:
        yield AclServer(server)
    finally:
        server.stop()


@pytest.fixture
def clean_acl_redis(acl_server: AclServer) -> Iterator[redis.Redis]:
    """An admin client to the ACL server, emptied first; fails the test if the session user
    was refused anything, even what redis-py or a script's pcall swallows."""
    client = acl_server.admin()
    try:
        client.flushall()
        client.execute_command("ACL", "LOG", "RESET")
        yield client
        assert acl_denials(client) == [], "the session user was refused commands"
    finally:
        client.close()


TOPOLOGIES = [
    "unix",
    "unix-async",
    "tls",
    "tls-async",
    "sentinel",
    "sentinel-async",
    "cluster",
    "cluster-async",
]


@pytest.fixture(scope="session")
def tls_url(redis_server: LocalServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``rediss://`` URL to the session server, through a TLS proxy with a throwaway CA
    (the bundled server has no TLS; tests/store/test_tls.py covers the TLS cases)."""
    pki = throwaway_pki(tmp_path_factory.mktemp("tls-runner"))
    proxy = TLSProxy(redis_server.host, redis_server.port, pki.server_context).start()
    try:
        yield f"{proxy.url}?{urlencode({'ssl_ca_certs': str(pki.ca_pem)})}"
    finally:
        proxy.stop()


# The standalone runners again on RESP3 (the others use the pinned default, RESP2).
RESP3 = ["sync-resp3", "async-resp3"]


# Every runner, and the Redis-specific selection (command counts, server settings: one server).
RUNNERS = ["sync", "async", "memory", "acl", *RESP3, *TOPOLOGIES]
REDIS_RUNNERS = ["sync", "async", "acl"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One `make_store` fixture for both selections: a test that asks for `make_redis_store`
    (or `redis_store`) gets the Redis runners, any other the whole list."""
    if "make_store" in metafunc.fixturenames:
        redis_only = "make_redis_store" in metafunc.fixturenames
        metafunc.parametrize("make_store", REDIS_RUNNERS if redis_only else RUNNERS, indirect=True)


@pytest.fixture
def make_store(request: pytest.FixtureRequest) -> Iterator[MakeStore]:
    """Factory of stores for the test's runner: ``make_store(url=None, options=None, **kw)``
    (`kw`: the `RedisStore` options)."""
    factory = StoreFactory(request.param, request)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def store(make_store: MakeStore) -> StoreProxy:
    """A default store, for every runner (sync, async, memory, acl, the topologies)."""
    return make_store()


@pytest.fixture
def make_redis_store(make_store: MakeStore) -> MakeStore:
    """`make_store` on a real server only: the sync, async and acl runners."""
    return make_store


@pytest.fixture
def redis_store(make_redis_store: MakeStore) -> StoreProxy:
    """A default store on a clean test server (sync, async and acl runners)."""
    return make_redis_store()


@pytest.fixture(autouse=True)
def no_pickle(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Fail if anything deserialises with pickle during a store test."""
    calls: list[str] = []

    def spy(name: str) -> Callable[..., Any]:
        def forbidden(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            raise AssertionError(f"pickle.{name} called: sessions must never be unpickled")

        return forbidden

    monkeypatch.setattr(pickle, "loads", spy("loads"))
    monkeypatch.setattr(pickle, "load", spy("load"))
    monkeypatch.setattr(pickle, "Unpickler", spy("Unpickler"))
    yield calls
    assert calls == [], f"pickle was used: {calls}"
