"""A Cluster over TLS, for real: three primaries, each behind a TLS-terminating proxy
(tests/tlsproxy.py, throwaway CA from `trustme`) that it announces as its client port, so
CLUSTER SLOTS and MOVED name the TLS endpoints and every command goes through TLS, as on a
managed Cluster (ElastiCache, Memorystore, Azure) with in-transit encryption.

No replicas: a replica follows its primary through the announced port, and the bundled
server speaks no TLS (the proxies stand in for a server that does).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from redis_sessions import AsyncRedisStore, RedisStore
from tests.support.clusterkit import HOST, LocalCluster
from tests.support.servers import wait_until
from tests.support.tlsproxy import TLSProxy, assert_unavailable_sync_and_async, throwaway_pki

pytestmark = [pytest.mark.cluster]


@dataclass
class TLSCluster:
    """The cluster, a proxy per node, and the CA files a client may be given."""

    cluster: LocalCluster
    proxies: list[TLSProxy]
    ca_pem: Path
    other_ca_pem: Path

    def url(self, ca: Path) -> str:
        nodes = ",".join(f"{HOST}:{p.port}" for p in self.proxies[:2])  # two startup nodes
        return f"rediss+cluster://{nodes}/?{urlencode({'ssl_ca_certs': str(ca)})}"


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSCluster]:
    folder = tmp_path_factory.mktemp("cluster-tls")
    pki = throwaway_pki(folder)
    cluster = LocalCluster(folder / "nodes", replicas=False).start()
    proxies: list[TLSProxy] = []
    try:
        for node in cluster.nodes:
            proxy = TLSProxy(HOST, node.port, pki.server_context).start()
            proxies.append(proxy)
            cluster._call(node, "CONFIG", "SET", "cluster-announce-port", str(proxy.port))
        announced = {p.port for p in proxies}

        def everyone_announces_tls() -> bool:
            for node in cluster.nodes:
                ports = {int(r[2][1]) for r in cluster._raw(node, "CLUSTER", "SLOTS")}
                if ports != announced:
                    return False
            return True

        wait_until(everyone_announces_tls, 10, message="the TLS ports were not announced")
        yield TLSCluster(cluster, proxies, pki.ca_pem, pki.other_ca_pem)
    finally:
        for proxy in proxies:
            proxy.stop()
        cluster.stop()


def sessions_round(
    stored: dict[str, dict[str, Any]], listed: dict[str, Any], tls: TLSCluster
) -> None:
    assert listed == stored
    # Every primary's TLS endpoint completed handshakes: no command went around TLS.
    assert all(p.peers for p in tls.proxies), [len(p.peers) for p in tls.proxies]
    assert not [p.refused for p in tls.proxies if p.refused]


def test_cluster_over_tls_sync(tls_cluster: TLSCluster) -> None:
    tls_cluster.cluster.flush()
    store = RedisStore(url=tls_cluster.url(tls_cluster.ca_pem))
    try:
        stored = {f"t{i}": {"i": i} for i in range(60)}  # over all three primaries
        for handle, data in stored.items():
            assert store.set(handle, data)
        assert store.length() == 60
        sessions_round(stored, dict(store.all()), tls_cluster)
        assert store.destroy(*stored) == 60
        assert store.length() == 0
    finally:
        store.close()


def test_cluster_over_tls_async(tls_cluster: TLSCluster) -> None:
    tls_cluster.cluster.flush()

    async def scenario() -> None:
        store = AsyncRedisStore(url=tls_cluster.url(tls_cluster.ca_pem))
        try:
            stored = {f"a{i}": {"i": i} for i in range(60)}
            assert (
                await asyncio.gather(*(store.set(h, d) for h, d in stored.items())) == [True] * 60
            )
            assert await store.length() == 60
            sessions_round(stored, {h: d async for h, d in store.all()}, tls_cluster)
            assert await store.destroy(*stored) == 60
        finally:
            await store.aclose()

    asyncio.run(scenario())


def test_cluster_with_a_wrong_ca_is_unavailable_with_the_tls_reason(
    tls_cluster: TLSCluster,
) -> None:
    assert_unavailable_sync_and_async(
        tls_cluster.url(tls_cluster.other_ca_pem), "TLS: certificate verify failed"
    )
