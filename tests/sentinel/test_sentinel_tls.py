"""Sentinel over TLS, for real: ``rediss+sentinel://`` asks a Sentinel through TLS and reaches
the master it names through TLS too, as on a managed service with in-transit encryption.

The bundled server speaks no TLS, so each process is behind a TLS proxy (tests/tlsproxy.py,
throwaway CA from `trustme`). The Sentinel watches the master at its proxy's address, so that
is the address it gives clients; that proxy also forwards the Sentinel's own plain connection
(``plain_too``), as a TLS-enabled server would accept it on a separate plain port.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest

from redis_sessions import AsyncRedisStore, RedisStore
from redis_sessions.server import LocalServer
from tests.support.sentinelkit import HOST, SentinelProcess
from tests.support.tlsproxy import TLSProxy, assert_unavailable_sync_and_async, throwaway_pki

pytestmark = [pytest.mark.sentinel]

SERVICE = "tlsmaster"


@dataclass
class TLSSentinel:
    """A master and a Sentinel, each behind a TLS proxy, and the CA files a client may use."""

    master_proxy: TLSProxy
    sentinel_proxy: TLSProxy
    ca_pem: Path
    other_ca_pem: Path

    def url(self, ca: Path) -> str:
        return (
            f"rediss+sentinel://{HOST}:{self.sentinel_proxy.port}/{SERVICE}"
            f"?{urlencode({'ssl_ca_certs': str(ca)})}"
        )


@pytest.fixture(scope="module")
def tls_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSSentinel]:
    folder = tmp_path_factory.mktemp("sentinel-tls")
    pki = throwaway_pki(folder)
    context = pki.server_context
    master = LocalServer(data_dir=folder / "master", appendonly=False)
    master.start()
    proxies: list[TLSProxy] = []
    sentinel: SentinelProcess | None = None
    try:
        master_proxy = TLSProxy(HOST, master.port, context, plain_too=True).start()
        proxies.append(master_proxy)
        sentinel = SentinelProcess(
            folder / "sentinel", master_proxy.port, SERVICE, quorum=1
        ).start()
        assert sentinel.port is not None
        sentinel_proxy = TLSProxy(HOST, sentinel.port, context).start()
        proxies.append(sentinel_proxy)
        yield TLSSentinel(master_proxy, sentinel_proxy, pki.ca_pem, pki.other_ca_pem)
    finally:
        for proxy in proxies:
            proxy.stop()
        if sentinel is not None:
            sentinel.stop()
        master.stop()


def went_through_tls(tls: TLSSentinel, handshakes_before: tuple[int, int]) -> None:
    # Our client completed new handshakes with both the Sentinel and the master it named.
    assert len(tls.sentinel_proxy.peers) > handshakes_before[0]
    assert len(tls.master_proxy.peers) > handshakes_before[1]
    assert not tls.sentinel_proxy.refused and not tls.master_proxy.refused
    assert tls.master_proxy.plain >= 1  # the Sentinel itself watches the master in clear


def test_sentinel_over_tls_sync_and_async(tls_sentinel: TLSSentinel) -> None:
    before = (len(tls_sentinel.sentinel_proxy.peers), len(tls_sentinel.master_proxy.peers))
    store = RedisStore(url=tls_sentinel.url(tls_sentinel.ca_pem))
    try:
        assert store.set("h", {"a": 1})
        assert store.get("h") == {"a": 1}
        assert list(store.ids()) == ["h"]
    finally:
        store.close()
    went_through_tls(tls_sentinel, before)
    before = (len(tls_sentinel.sentinel_proxy.peers), len(tls_sentinel.master_proxy.peers))

    async def scenario() -> None:
        astore = AsyncRedisStore(url=tls_sentinel.url(tls_sentinel.ca_pem))
        try:
            assert await astore.get("h") == {"a": 1}
            assert await astore.set("h", {"a": 2})
            assert await astore.destroy("h") == 1
        finally:
            await astore.aclose()

    asyncio.run(scenario())
    went_through_tls(tls_sentinel, before)


def test_sentinel_with_a_wrong_ca_is_unavailable(tls_sentinel: TLSSentinel) -> None:
    assert_unavailable_sync_and_async(
        tls_sentinel.url(tls_sentinel.other_ca_pem), "Sentinel: no master for 'tlsmaster'"
    )
    assert tls_sentinel.sentinel_proxy.refused  # the clients broke the handshake off
