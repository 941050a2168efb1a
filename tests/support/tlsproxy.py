"""A small TLS-terminating TCP proxy for TLS tests (stunnel in miniature).

`TLSProxy` listens on 127.0.0.1 with a server-side `ssl.SSLContext` and forwards the decrypted
bytes to a plain server, so ``rediss://`` clients can be tested against a server built without
TLS. Give the context a CA to trust and ``verify_mode = CERT_REQUIRED`` to require client
certificates (mutual TLS). `TLSProxy.peers` records, for each connection whose handshake
succeeded, the client certificate it presented (None without one), so a test can tell that a
certificate was really presented. `TLSProxy.refused` records the OpenSSL reason of each
handshake the proxy refused or the client broke off (e.g. ``"PEER_DID_NOT_RETURN_A_CERTIFICATE"``,
``"TLSV1_ALERT_UNKNOWN_CA"``), or ``"EOF"`` for a client that closed during the handshake
without saying why (asyncio's TLS does that when it rejects the server's certificate).

The proxy runs an asyncio loop in a daemon thread; `TLSProxy.stop` closes everything and joins
the thread within a bounded time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from redis_sessions import AsyncRedisStore, ConnectOptions, RedisStore, StoreUnavailableError
from tests.support.loopproxy import HOST, TIMEOUT, LoopProxy, pump_both_ways

__all__ = ["TLSProxy", "ThrowawayPKI", "assert_unavailable_sync_and_async", "throwaway_pki"]

_CHUNK = 65536
_HANDSHAKE_RECORD = b"\x16"  # the first byte of a TLS ClientHello
_EOF = "EOF"  # in `TLSProxy.refused`: the client closed during the handshake, without an alert


class TLSProxy(LoopProxy):
    """TLS on ``127.0.0.1:port``, forwarded in clear to ``target_host:target_port``."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        context: ssl.SSLContext,
        *,
        plain_too: bool = False,
    ) -> None:
        """Configure the proxy; `start` (or ``with``) opens the listening port. With
        `plain_too`, a client whose first byte is not a TLS handshake record is forwarded in
        clear (servers behind it that talk to each other, e.g. a Sentinel watching a master,
        speak no TLS; the clients under test do)."""
        super().__init__(target_host, target_port)
        self.context = context
        self.plain_too = plain_too
        self.plain = 0  # connections forwarded in clear
        self.peers: list[dict[str, Any] | None] = []
        self.refused: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """``rediss://127.0.0.1:port/0``."""
        return f"rediss://{HOST}:{self.port}/0"

    def __repr__(self) -> str:
        """Show the route."""
        return f"<TLSProxy {HOST}:{self._port} -> {self.target_host}:{self.target_port}>"

    # -- loop thread ----------------------------------------------------------------------------

    # Plain TCP listener (the base class's): the TLS layer is ours (`_ServerTLS`), so that a
    # refused handshake still sends its alert to the client, as a TLS server does, and is
    # recorded in `refused`.

    def _open_tasks(self) -> Iterable[asyncio.Task[None]]:
        return list(self._tasks)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        upstream: asyncio.StreamWriter | None = None
        try:
            tls = _ServerTLS(self.context, reader, writer)
            if self.plain_too:
                first = await asyncio.wait_for(reader.read(1), TIMEOUT)
                if first and first != _HANDSHAKE_RECORD:
                    self.plain += 1
                    upstream_reader, upstream_writer = await asyncio.wait_for(
                        asyncio.open_connection(self.target_host, self.target_port), TIMEOUT
                    )
                    upstream = upstream_writer
                    upstream_writer.write(first)
                    await pump_both_ways(
                        _copy(reader, upstream_writer), _copy(upstream_reader, writer)
                    )
                    return
                tls.incoming.write(first)
            try:
                await asyncio.wait_for(tls.handshake(), TIMEOUT)
            except ssl.SSLError as exc:
                self.refused.append(exc.reason or str(exc))
                return
            except EOFError:
                self.refused.append(_EOF)
                return
            self.peers.append(tls.peercert())
            upstream_reader, server = await asyncio.wait_for(
                asyncio.open_connection(self.target_host, self.target_port), TIMEOUT
            )
            upstream = server
            await pump_both_ways(_decrypt(tls, server), _encrypt(upstream_reader, tls))
        except (OSError, asyncio.TimeoutError):
            pass
        except asyncio.CancelledError:
            # `stop`: end quietly; asyncio's stream callback logs a handler that ends cancelled.
            pass
        finally:
            self._tasks.discard(task)
            writer.transport.abort()
            if upstream is not None:
                upstream.transport.abort()


class _ServerTLS:
    """The server side of TLS over a plain stream pair (an `ssl.SSLObject` on memory BIOs)."""

    def __init__(
        self, context: ssl.SSLContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=True)

    async def flush(self) -> None:
        if data := self.outgoing.read():
            self.writer.write(data)
            await self.writer.drain()

    async def fill(self) -> bool:
        """Feed the next chunk from the client to the TLS object; False at EOF."""
        data = await self.reader.read(_CHUNK)
        if not data:
            return False
        self.incoming.write(data)
        return True

    async def handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self.flush()
                if not await self.fill():
                    raise EOFError from None
            except ssl.SSLError:
                await self.flush()  # the alert telling the client why
                raise
        await self.flush()

    def peercert(self) -> dict[str, Any] | None:
        return self.tls.getpeercert()

    async def recv(self) -> bytes:
        """Decrypted bytes from the client; b"" at EOF or close_notify."""
        while True:
            try:
                return self.tls.read(_CHUNK)
            except ssl.SSLWantReadError:
                await self.flush()
                if not await self.fill():
                    return b""
            except ssl.SSLZeroReturnError:
                return b""

    async def send(self, data: bytes) -> None:
        self.tls.write(data)
        await self.flush()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()


async def _decrypt(tls: _ServerTLS, upstream: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):  # ssl.SSLError is an OSError
        while data := await tls.recv():
            upstream.write(data)
            await upstream.drain()


async def _encrypt(reader: asyncio.StreamReader, tls: _ServerTLS) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(_CHUNK):
            await tls.send(data)


@dataclass(frozen=True)
class ThrowawayPKI:
    """CA files for clients (ours, and one that signed nothing of ours: "the wrong CA") and a
    server context holding a certificate for 127.0.0.1 from ours."""

    ca_pem: Path
    other_ca_pem: Path
    server_context: ssl.SSLContext


def throwaway_pki(folder: Path) -> ThrowawayPKI:
    """Make the CAs and write their certificates under `folder`."""
    ca, other_ca = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(folder / "ca.pem")
    other_ca.cert_pem.write_to_path(folder / "other-ca.pem")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(context)
    return ThrowawayPKI(folder / "ca.pem", folder / "other-ca.pem", context)


def assert_unavailable_sync_and_async(url: str, match: str) -> None:
    """A sync and an asyncio store made from `url` (one attempt per command) fail a read as
    unavailable, with a reason matching `match`."""
    once = ConnectOptions(retries=0)
    store = RedisStore(url=url, connect_options=once)
    try:
        with pytest.raises(StoreUnavailableError, match=match):
            store.get("h")
    finally:
        store.close()

    async def scenario() -> None:
        astore = AsyncRedisStore(url=url, connect_options=once)
        try:
            with pytest.raises(StoreUnavailableError, match=match):
                await astore.get("h")
        finally:
            await astore.aclose()

    asyncio.run(scenario())
