"""TLS for real: ``rediss://`` clients through a TLS-terminating proxy
(tests/support/tlsproxy.py) in front of the plain test server, with throwaway CAs made by
`trustme` for this test session.

Every store test runs for the sync and the asyncio store. The bundled valkey-server is built
without TLS, hence the proxy; it speaks TLS with Python's `ssl` (OpenSSL), like a server would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import redis
import trustme
from redis import exceptions as rx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from redis_sessions import (
    AsyncRedisStore,
    ConnectOptions,
    RedisStore,
    StoreUnavailableError,
    connect,
    connect_async,
)
from redis_sessions.asgi import SessionMiddleware
from redis_sessions.engine import handle_for
from redis_sessions.server import LocalServer
from redis_sessions.store._health import classify
from tests.store.storekit import StoreProxy, create_session, key_exists, serve_read
from tests.support.servers import wait_until
from tests.support.tlsproxy import TLSProxy

CLIENT_NAME = "sessions-client.test"
# What OpenSSL says of a server certificate from a CA the client does not trust: a server
# sending only its own certificate, or (SELF_SIGNED) its CA too; OpenSSL 1.1 writes "self signed".
UNKNOWN_ISSUER = "TLS: certificate verify failed: unable to get local issuer certificate"
SELF_SIGNED = re.compile(
    r"TLS: certificate verify failed: self[- ]signed certificate in "
    r"certificate chain"
)
# For the stores that must fail: the default retry only repeats the refused handshake.
ONCE = ConnectOptions(retries=0)


@dataclass(frozen=True)
class Pki:
    """Throwaway certificates, as files clients can be pointed at."""

    ca: trustme.CA
    ca_pem: Path  # the CA that signed the server and client certificates
    other_ca_pem: Path  # a CA that signed nothing of ours: the "wrong CA"
    server: trustme.LeafCert  # for 127.0.0.1 and localhost
    misnamed_server: trustme.LeafCert  # valid, from our CA, but for another host name
    client_cert: Path
    client_key: Path
    rogue_client_cert: Path  # a client certificate from the other CA
    rogue_client_key: Path


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("tls")
    ca, other_ca = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(folder / "ca.pem")
    other_ca.cert_pem.write_to_path(folder / "other-ca.pem")
    client = ca.issue_cert(CLIENT_NAME)
    client.cert_chain_pems[0].write_to_path(folder / "client.crt")
    client.private_key_pem.write_to_path(folder / "client.key")
    rogue = other_ca.issue_cert(CLIENT_NAME)
    rogue.cert_chain_pems[0].write_to_path(folder / "rogue.crt")
    rogue.private_key_pem.write_to_path(folder / "rogue.key")
    return Pki(
        ca=ca,
        ca_pem=folder / "ca.pem",
        other_ca_pem=folder / "other-ca.pem",
        server=ca.issue_cert("127.0.0.1", "localhost"),
        misnamed_server=ca.issue_cert("db.internal.test"),
        client_cert=folder / "client.crt",
        client_key=folder / "client.key",
        rogue_client_cert=folder / "rogue.crt",
        rogue_client_key=folder / "rogue.key",
    )


MakeProxy = Callable[..., TLSProxy]


@pytest.fixture
def make_proxy(pki: Pki, redis_server: LocalServer) -> Iterator[MakeProxy]:
    """``make_proxy(mutual=False, leaf=None)``: a started TLS proxy to the test server."""
    started: list[TLSProxy] = []

    def factory(*, mutual: bool = False, leaf: trustme.LeafCert | None = None) -> TLSProxy:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        (leaf or pki.server).configure_cert(context)
        if mutual:
            pki.ca.configure_trust(context)
            context.verify_mode = ssl.CERT_REQUIRED
        proxy = TLSProxy(redis_server.host, redis_server.port, context)
        started.append(proxy)
        return proxy.start()

    try:
        yield factory
    finally:
        for proxy in started:
            proxy.stop()


MakeTLSStore = Callable[..., StoreProxy]


@pytest.fixture(params=["sync", "async"])
def make_tls_store(
    request: pytest.FixtureRequest, clean_redis: redis.Redis
) -> Iterator[MakeTLSStore]:
    """``make_tls_store(url, options=None, **client_kwargs)``: a store built with
    `connect`/`connect_async`.

    Its `raw` client is a plain connection to the server behind the proxy.
    """
    kind: str = request.param
    loop = asyncio.new_event_loop() if kind == "async" else None
    made: list[StoreProxy] = []

    def factory(
        url: str, options: ConnectOptions | None = None, **client_kwargs: Any
    ) -> StoreProxy:
        if loop is None:
            store: Any = RedisStore(connect(url, options, **client_kwargs))
        else:
            store = AsyncRedisStore(connect_async(url, options, **client_kwargs))
        proxy = StoreProxy(kind, store, clean_redis, loop)
        made.append(proxy)
        return proxy

    try:
        yield factory
    finally:
        for proxy in made:
            if loop is None:
                proxy.inner.close()
            else:
                proxy.run(proxy.inner.aclose())
        if loop is not None:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


def tls_url(proxy: TLSProxy, **query: str) -> str:
    """The proxy's ``rediss://`` URL with ssl options as query parameters."""
    return f"{proxy.url}?{urlencode(query)}" if query else proxy.url


def session_round(store: StoreProxy) -> None:
    """A session's life through the store: create, read (engine), set, get, touch, ids,
    destroy; checked against the server directly."""
    engine = store.engine()
    session = create_session(store, engine, user="ada", cart=[1, 2])
    assert serve_read(store, engine, session.id)["user"] == "ada"
    handle = handle_for(session.id)
    assert key_exists(store, handle)
    assert store.set(handle, {"user": "ada", "n": 2}) is True
    assert store.get(handle) == {"user": "ada", "n": 2}
    assert store.touch(handle, 60) is True
    assert handle in set(store.ids())
    assert store.destroy(handle) == 1
    assert store.get(handle) is None
    assert not key_exists(store, handle)


def refused(store: StoreProxy) -> StoreUnavailableError:
    """The error of a write that cannot connect; nothing was written by the attempt."""
    with pytest.raises(StoreUnavailableError) as info:
        store.set("h-refused", {"a": 1})
    assert store.raw is not None and not store.raw.exists(store.layout.key("h-refused"))
    return info.value


# -- server authentication: the client checks the server against its CA file ------------------


@pytest.mark.parametrize("form", ["kwargs", "url"])
def test_session_round_over_tls(
    make_proxy: MakeProxy, make_tls_store: MakeTLSStore, pki: Pki, form: str
) -> None:
    proxy = make_proxy()
    if form == "kwargs":
        store = make_tls_store(proxy.url, ssl_ca_certs=str(pki.ca_pem))
    else:
        store = make_tls_store(tls_url(proxy, ssl_ca_certs=str(pki.ca_pem)))
    session_round(store)
    assert proxy.peers, "the store did not go through the TLS proxy"
    assert proxy.refused == []


@pytest.mark.parametrize(
    ("cert_reqs", "chain"), [("required", "leaf"), ("optional", "leaf"), ("required", "with-ca")]
)
def test_wrong_ca_is_refused_with_a_clear_error(
    make_proxy: MakeProxy,
    make_tls_store: MakeTLSStore,
    pki: Pki,
    cert_reqs: str,
    chain: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ "optional" verifies too: for a client, OpenSSL treats it as "required". A server that
    trusts its CA for client certificates (mutual TLS) sends that CA along with its own
    certificate, which changes OpenSSL's words."""
    proxy = make_proxy(mutual=chain == "with-ca")
    store = make_tls_store(
        proxy.url,
        ONCE,
        ssl_ca_certs=str(pki.other_ca_pem),
        ssl_cert_reqs=cert_reqs,
        ssl_certfile=str(pki.client_cert),
        ssl_keyfile=str(pki.client_key),
    )
    with caplog.at_level(logging.WARNING, logger="redis_sessions"):
        error = refused(store)
    if chain == "leaf":
        assert error.reason == UNKNOWN_ISSUER
    else:
        assert SELF_SIGNED.fullmatch(error.reason), error.reason
    assert str(error) == f"session store unavailable ({error.reason})"
    assert "127.0.0.1" not in str(error)
    assert f"unavailable ({error.reason}); answering 503" in caplog.text
    assert proxy.peers == []
    # The client broke off the handshake: the sync client tells the server why with an alert,
    # asyncio's TLS closes without one.
    seen = "TLSV1_ALERT_UNKNOWN_CA" if store.kind == "sync" else "EOF"
    wait_until(lambda: seen in proxy.refused, 5)


def test_system_trust_store_does_not_trust_a_private_ca(
    make_proxy: MakeProxy, make_tls_store: MakeTLSStore
) -> None:
    """Without ssl_ca_certs the system CAs are used: a private CA must be given."""
    store = make_tls_store(make_proxy().url, ONCE)
    assert refused(store).reason == UNKNOWN_ISSUER


def test_hostname_is_checked(make_proxy: MakeProxy, make_tls_store: MakeTLSStore, pki: Pki) -> None:
    """A certificate from the right CA but for another host is refused; the reason does not
    carry the host (Python's message does)."""
    proxy = make_proxy(leaf=pki.misnamed_server)
    error = refused(make_tls_store(proxy.url, ONCE, ssl_ca_certs=str(pki.ca_pem)))
    assert error.reason == "TLS: certificate verify failed: IP address mismatch"
    # Opting out of the name check, the CA still being checked:
    session_round(
        make_tls_store(tls_url(proxy, ssl_ca_certs=str(pki.ca_pem), ssl_check_hostname="false"))
    )


def test_cert_reqs_none_skips_verification(
    make_proxy: MakeProxy, make_tls_store: MakeTLSStore, pki: Pki
) -> None:
    """Encrypted but unauthenticated (not for production): a wrong CA and a wrong host name
    both pass."""
    proxy = make_proxy(leaf=pki.misnamed_server)
    store = make_tls_store(proxy.url, ssl_ca_certs=str(pki.other_ca_pem), ssl_cert_reqs="none")
    session_round(store)


# -- mutual TLS: the server requires a client certificate from its CA -------------------------


@pytest.mark.parametrize("form", ["kwargs", "url"])
def test_mutual_tls_session_round(
    make_proxy: MakeProxy, make_tls_store: MakeTLSStore, pki: Pki, form: str
) -> None:
    proxy = make_proxy(mutual=True)
    files = {
        "ssl_ca_certs": str(pki.ca_pem),
        "ssl_certfile": str(pki.client_cert),
        "ssl_keyfile": str(pki.client_key),
    }
    if form == "kwargs":
        store = make_tls_store(proxy.url, **files)
    else:
        store = make_tls_store(tls_url(proxy, **files))
    session_round(store)
    assert proxy.peers
    for peer in proxy.peers:  # every pooled connection presented our client certificate
        assert peer is not None and peer["subjectAltName"] == (("DNS", CLIENT_NAME),)
    assert proxy.refused == []


def test_mutual_tls_without_client_certificate_is_refused(
    make_proxy: MakeProxy, make_tls_store: MakeTLSStore, pki: Pki
) -> None:
    proxy = make_proxy(mutual=True)
    error = refused(make_tls_store(proxy.url, ONCE, ssl_ca_certs=str(pki.ca_pem)))
    # TLS 1.3: the client learns it from the server's alert, on its first read.
    assert error.reason == "TLS: TLSV13_ALERT_CERTIFICATE_REQUIRED"
    assert proxy.peers == []
    wait_until(lambda: "PEER_DID_NOT_RETURN_A_CERTIFICATE" in proxy.refused, 5)


def test_mutual_tls_client_certificate_from_another_ca_is_refused(
    make_proxy: MakeProxy, make_tls_store: MakeTLSStore, pki: Pki
) -> None:
    proxy = make_proxy(mutual=True)
    store = make_tls_store(
        proxy.url,
        ONCE,
        ssl_ca_certs=str(pki.ca_pem),
        ssl_certfile=str(pki.rogue_client_cert),
        ssl_keyfile=str(pki.rogue_client_key),
    )
    error = refused(store)
    assert error.reason == "TLS: TLSV1_ALERT_UNKNOWN_CA"  # the server does not know its CA
    assert proxy.peers == []
    wait_until(lambda: "CERTIFICATE_VERIFY_FAILED" in proxy.refused, 5)


# -- an ASGI app whose sessions live behind TLS -------------------------------------------------


def asgi_client(
    url: str, options: ConnectOptions | None = None, **client_kwargs: Any
) -> TestClient:
    async def incr(request: Request) -> JSONResponse:
        request.session["n"] = request.session.get("n", 0) + 1
        return JSONResponse({"n": request.session["n"]})

    store = AsyncRedisStore(connect_async(url, options, **client_kwargs))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await store.aclose()  # on the TestClient's loop, where the connections were made

    app = Starlette(routes=[Route("/incr", incr)], lifespan=lifespan)
    return TestClient(SessionMiddleware(app, store, secret="t" * 32), raise_server_exceptions=False)


def test_asgi_app_over_mutual_tls(
    make_proxy: MakeProxy, pki: Pki, clean_redis: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = make_proxy(mutual=True)
    with asgi_client(
        proxy.url,
        ssl_ca_certs=str(pki.ca_pem),
        ssl_certfile=str(pki.client_cert),
        ssl_keyfile=str(pki.client_key),
    ) as client:
        assert client.get("/incr").json() == {"n": 1}
        assert client.get("/incr").json() == {"n": 2}
    assert clean_redis.dbsize() == 1
    with (
        caplog.at_level(logging.WARNING, logger="redis_sessions"),
        asgi_client(
            proxy.url,
            ONCE,
            ssl_ca_certs=str(pki.other_ca_pem),
            ssl_certfile=str(pki.client_cert),
            ssl_keyfile=str(pki.client_key),
        ) as client,
    ):
        response = client.get("/incr")
    assert response.status_code == 503
    assert "retry-after" in response.headers
    assert "(TLS: certificate verify failed: " in caplog.text
    assert clean_redis.dbsize() == 1


# -- classify, without a network ---------------------------------------------------------------


def wrapped(cause: BaseException) -> rx.ConnectionError:
    """`cause` re-raised the way redis-py does: a new ConnectionError raised while handling it,
    so the cause is only its context."""
    try:
        raise cause
    except OSError:
        try:
            raise rx.ConnectionError("Error 1 connecting to db.internal.test:6380.")
        except rx.ConnectionError as exc:
            return exc


def verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {message}")
    error.verify_code = code
    error.verify_message = message
    error.reason = "CERTIFICATE_VERIFY_FAILED"
    return error


@pytest.mark.parametrize(
    ("cause", "reason"),
    [
        (
            verify_error(20, "unable to get local issuer certificate"),
            "TLS: certificate verify failed: unable to get local issuer certificate",
        ),
        (
            verify_error(10, "certificate has expired"),
            "TLS: certificate verify failed: certificate has expired",
        ),
        (
            verify_error(62, "Hostname mismatch, certificate is not valid for 'db.internal.test'."),
            "TLS: certificate verify failed: hostname mismatch",
        ),
        (
            verify_error(64, "IP address mismatch, certificate is not valid for '10.0.0.7'."),
            "TLS: certificate verify failed: IP address mismatch",
        ),
        (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), "TLS: error"),
        (ConnectionRefusedError(111, "Connection refused"), "connection"),
    ],
    ids=["unknown-issuer", "expired", "hostname", "ip", "other-ssl", "not-tls"],
)
def test_classify_names_tls_failures(cause: BaseException, reason: str) -> None:
    error = classify(wrapped(cause))
    assert error is not None
    assert error.reason == reason
    assert "db.internal.test" not in error.reason and "10.0.0.7" not in error.reason


def test_classify_plain_ssl_error_names_openssl_reason() -> None:
    cause = ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert")
    cause.reason = "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    error = classify(wrapped(cause))
    assert error is not None and error.reason == "TLS: TLSV13_ALERT_CERTIFICATE_REQUIRED"


def test_classify_survives_a_cyclic_context_chain() -> None:
    first, second = rx.ConnectionError("a"), ConnectionResetError("b")
    first.__context__, second.__context__ = second, first
    error = classify(first)
    assert error is not None and error.reason == "connection"
