"""Fuzzing the Cookie header through both adapters, against the real test server.

For any malformed Cookie header (one or several headers under ASGI): the answer is never a
5xx, a read-only request sends no Redis command at all (counted client side per round trip
and server side in INFO commandstats), and a request that writes costs exactly the write and
answers with a fresh signed id that never echoes what the client sent.
"""

from __future__ import annotations

import io
from typing import Any

import httpx
from hypothesis import example, given
from hypothesis import strategies as st

from redis_sessions._cookies import cookie_values
from redis_sessions.engine import is_well_formed, new_id
from tests.fuzz.fuzzkit import COOKIE, Rig, fuzz, junk_header, make_engine, set_cookie_value
from tests.support.servers import command_counts, command_delta

ENGINE = make_engine()

header_bytes = st.one_of(
    junk_header().map(lambda s: s.encode("utf-8", "surrogatepass")),
    junk_header().map(lambda s: s.encode("latin-1", "replace")),
    st.binary(max_size=200),
)
ascii_header = junk_header().map(lambda s: s.encode("ascii", "replace").decode("ascii"))


def _check_fresh_cookie(response: httpx.Response, sent: list[str]) -> None:
    """The write's Set-Cookie carries a new validly signed id, not anything that was sent."""
    value = set_cookie_value(response.headers)
    assert value is not None
    verified = ENGINE.signer.unsign(value)
    assert verified is not None and is_well_formed(verified[0]) and verified[1] == 0
    for header in sent:
        assert verified[0] not in header
        assert value not in cookie_values(header, COOKIE)
    assert len(response.headers["set-cookie"]) < 300  # nothing of a huge input came back


def _check_read_only(rig: Rig, response: httpx.Response, before: dict[str, int]) -> None:
    assert response.status_code == 200, response.text[:200]
    assert rig.trips.count == 0, "a malformed cookie cost a Redis round trip"
    assert command_delta(before, command_counts(rig.redis)) == {}
    assert set_cookie_value(response.headers) is None


@fuzz(60)
@given(headers=st.lists(header_bytes, min_size=1, max_size=3))
@example(headers=[b"session=" + b"A" * (1 << 20)])
@example(headers=[b"session=\r\n", b"session=\x00", b'session="'])
@example(headers=[f"session={'a' * 43}.{'b' * 43}".encode()])
def test_asgi_malformed_cookie(asgi: Rig, headers: list[bytes]) -> None:
    sent = [h.decode("latin-1") for h in headers]
    cookie_headers = [("cookie", h) for h in headers]

    asgi.trips.count = 0
    before = command_counts(asgi.redis)
    response = asgi.http.get("/get", headers=cookie_headers)
    _check_read_only(asgi, response, before)

    asgi.trips.count = 0
    response = asgi.http.get("/set", headers=cookie_headers)
    assert response.status_code == 200, response.text[:200]
    assert asgi.trips.count == 1  # the write; no load for a cookie that does not verify
    _check_fresh_cookie(response, sent)


@fuzz(60)
@given(header=ascii_header)
@example(header="session=" + "A" * (1 << 20))
@example(header='session="; session=\r\n; session=\x00')
def test_wsgi_malformed_cookie(wsgi: Rig, header: str) -> None:
    # httpx's WSGITransport carries ASCII header values only; see the direct test below.
    wsgi.trips.count = 0
    before = command_counts(wsgi.redis)
    response = wsgi.http.get("/get", headers={"cookie": header})
    _check_read_only(wsgi, response, before)

    wsgi.trips.count = 0
    response = wsgi.http.get("/set", headers={"cookie": header})
    assert response.status_code == 200, response.text[:200]
    assert wsgi.trips.count == 1
    _check_fresh_cookie(response, [header])


def _call_wsgi(app: Any, path: str, cookie: str) -> tuple[str, list[tuple[str, str]]]:
    """Call a WSGI app directly with a PEP 3333 environ (header bytes decoded as latin-1)."""
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.update(status=status, headers=headers)
        return lambda data: None

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
        "HTTP_COOKIE": cookie,
    }
    body = app(environ, start_response)
    try:
        b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return seen["status"], seen["headers"]


@fuzz(40)
@given(raw=header_bytes)
def test_wsgi_direct_latin1_cookie(wsgi: Rig, raw: bytes) -> None:
    header = raw.decode("latin-1")
    wsgi.trips.count = 0
    status, headers = _call_wsgi(wsgi.app, "/get", header)
    assert status.startswith("200"), status
    assert wsgi.trips.count == 0
    assert not [v for k, v in headers if k.lower() == "set-cookie"]

    status, headers = _call_wsgi(wsgi.app, "/set", header)
    assert status.startswith("200"), status
    assert wsgi.trips.count == 1
    response = httpx.Response(200, headers=headers)
    _check_fresh_cookie(response, [header])


def test_counters_see_a_valid_cookie(asgi: Rig, wsgi: Rig) -> None:
    """Control: a validly signed cookie (for an unknown id) does cost its one read, so the
    zero counts above are not a counter that sees nothing."""
    cookie = {"cookie": f"{COOKIE}={ENGINE.signer.sign(new_id())}"}
    for rig in (asgi, wsgi):
        rig.trips.count = 0
        before = command_counts(rig.redis)
        assert rig.http.get("/get", headers=cookie).status_code == 200
        assert rig.trips.count == 1
        assert command_delta(before, command_counts(rig.redis)) != {}
