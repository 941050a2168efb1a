"""Fuzzing the Cookie header at the engine level (no I/O).

Properties: `read_cookie` never raises and adopts no id unless a value verifies; the work on a
header is bounded (what lies past the first 8 KiB changes nothing and is never looked at; at
most 4 candidates); a validly signed cookie anywhere in the first 8 KiB, among junk, is found.
"""

from __future__ import annotations

from typing import Any, SupportsIndex

from hypothesis import example, given
from hypothesis import strategies as st

from redis_sessions._cookies import cookie_values
from redis_sessions.engine import Incoming, Signer, handle_for, new_id
from tests.fuzz.fuzzkit import (
    COOKIE,
    MAX_CANDIDATES,
    OLD_SECRET,
    SCAN_LIMIT,
    fuzz,
    junk_header,
    make_engine,
    names,
    nasty_text,
    separators,
    values,
)

ENGINE = make_engine()
MIB = 1 << 20


@fuzz(80)
@given(header=st.one_of(junk_header(), st.none()))
@example(header="")
@example(header=f"{COOKIE}=")
@example(header=f'{COOKIE}="')
@example(header=f'{COOKIE}=""')
@example(header=f"{COOKIE}=\r\n{COOKIE}=\x00")
@example(header=f"{COOKIE}={'A' * 43}.{'B' * 43}")
def test_junk_never_raises_and_adopts_nothing(header: str | None) -> None:
    incoming = ENGINE.read_cookie(header)
    assert isinstance(incoming, Incoming)
    assert incoming.handle is None
    assert incoming.session_id is None
    assert incoming.resign is False
    assert ENGINE.load_spec(incoming, 0) is None  # hence no Redis call
    found = cookie_values(header, COOKIE)
    assert len(found) <= MAX_CANDIDATES
    assert incoming.cookie_present == bool(found)


class CountingStr(str):
    """A str that records how far into itself any method looked (slices are precise)."""

    looked = 0

    def _whole(self) -> None:
        CountingStr.looked = max(CountingStr.looked, len(self))

    def __getitem__(self, key: SupportsIndex | slice) -> str:
        if isinstance(key, slice):
            start, stop, _ = key.indices(len(self))
            CountingStr.looked = max(CountingStr.looked, stop if stop > start else 0)
        else:
            CountingStr.looked = max(CountingStr.looked, key.__index__() + 1)
        return str.__getitem__(self, key)

    def __iter__(self) -> Any:
        self._whole()
        return str.__iter__(self)

    def __contains__(self, key: object) -> bool:
        self._whole()
        return str.__contains__(self, key)  # type: ignore[operator]


for _method in (
    "split",
    "rsplit",
    "partition",
    "rpartition",
    "find",
    "rfind",
    "index",
    "rindex",
    "count",
    "strip",
    "lstrip",
    "rstrip",
    "splitlines",
    "encode",
    "replace",
    "lower",
    "upper",
    "casefold",
    "startswith",
    "endswith",
    "isascii",
    "__eq__",
    "__hash__",
    "__str__",
    "__format__",
    "__mod__",
    "__add__",
    "__getnewargs__",
    "join",
    "translate",
    "expandtabs",
    "removeprefix",
    "removesuffix",
    "__reduce_ex__",
):

    def _spy(self: CountingStr, *args: Any, _name: str = _method, **kwargs: Any) -> Any:
        self._whole()
        return getattr(str, _name)(self, *args, **kwargs)

    setattr(CountingStr, _method, _spy)


@fuzz(40)
@given(
    head=junk_header(),
    pad=st.sampled_from([" ", ";", "x", "=", '"', "\x00"]),
    tail_piece=st.one_of(
        st.just(""),  # the tail is filled with valid cookies of ours below
        st.sampled_from([";", "=", f"; {COOKIE}=", '"', "\r\n", "\x00", "é"]),
        nasty_text.filter(bool),
    ),
)
def test_bytes_after_8k_change_nothing_and_are_never_read(
    head: str, pad: str, tail_piece: str
) -> None:
    head = head[:SCAN_LIMIT].ljust(SCAN_LIMIT, pad)
    if not tail_piece:  # what a scanner that reads too far would adopt
        tail_piece = f"; {COOKIE}={ENGINE.signer.sign(new_id())}"
    full = head + tail_piece * (MIB // len(tail_piece) + 1)
    assert len(full) > MIB

    expected = cookie_values(head, COOKIE)
    assert len(expected) <= MAX_CANDIDATES
    assert cookie_values(full, COOKIE) == expected
    assert ENGINE.read_cookie(full) == ENGINE.read_cookie(head)
    assert ENGINE.read_cookie(full).handle is None

    CountingStr.looked = 0
    assert ENGINE.read_cookie(CountingStr(full)) == ENGINE.read_cookie(head)
    assert CountingStr.looked <= SCAN_LIMIT, f"looked at {CountingStr.looked} characters"


@fuzz(60)
@given(
    found=st.lists(
        st.text(alphabet="abcXYZ019-_.~", min_size=1, max_size=30), min_size=1, max_size=60
    ),
    junk=st.lists(
        st.builds(
            lambda n, v: f"{n}={v}",
            st.sampled_from(["a", "b", "s"]),
            nasty_text.map(lambda t: t.replace(";", "")),
        ),
        max_size=3,
    ),
)
def test_at_most_four_candidates_in_order(found: list[str], junk: list[str]) -> None:
    header = "; ".join(junk + [f"{COOKIE}={v}" for v in found])
    assert cookie_values(header, COOKIE) == found[:MAX_CANDIDATES]
    assert ENGINE.read_cookie(header).handle is None


_OLD = Signer(OLD_SECRET)
junk_name = names.map(lambda n: n.replace(";", "")).filter(lambda n: n.strip() != COOKIE)
junk_cookie = st.one_of(
    st.builds(lambda n, v: f"{n}={v}", junk_name, values.map(lambda v: v.replace(";", ""))),
    nasty_text.map(lambda t: t.replace(";", "").replace("=", "")),  # no '=': not a cookie
)
bad_ours = values.map(lambda v: f"{COOKIE}={v.replace(';', '')[:500]}")


@fuzz(100)
@given(
    before=st.lists(junk_cookie, max_size=20),
    bad=st.lists(bad_ours, max_size=MAX_CANDIDATES - 1),
    after=st.lists(junk_cookie, max_size=5),
    order=st.randoms(use_true_random=False),
    pad=st.integers(0, SCAN_LIMIT),
    wrap=st.sampled_from(["{}", '"{}"', " {} ", '\t"{}" ', "{}\r\n"]),
    sep=separators.filter(lambda s: ";" in s),
    old=st.booleans(),
    big_tail=st.booleans(),
)
def test_valid_cookie_in_first_8k_is_found(
    before: list[str],
    bad: list[str],
    after: list[str],
    order: Any,
    pad: int,
    wrap: str,
    sep: str,
    old: bool,
    big_tail: bool,
) -> None:
    sid = new_id()
    signed = (_OLD if old else ENGINE.signer).sign(sid)
    ours = f"{COOKIE}={wrap.format(signed)}"
    parts = before + bad
    order.shuffle(parts)
    # A junk cookie of random length moves ours anywhere in the first 8 KiB; the part that
    # holds ours must end (at a separator) within the scanned prefix.
    room = SCAN_LIMIT - len(sep.join([*parts, ours, ""])) - 2 * len(sep) - 4
    parts[:0] = [f"pad={'p' * min(pad, room)}"] if room > 0 else []
    while len(sep.join([*parts, ours, ""])) > SCAN_LIMIT:
        parts.pop(0 if parts[0].startswith("pad=") else -1)  # bad ones are never needed
    header = sep.join([*parts, ours, *after])
    if big_tail:
        header += sep + "z=" + "y" * MIB
    assert header.find(signed) + len(signed) < SCAN_LIMIT

    incoming = ENGINE.read_cookie(header)
    assert incoming == Incoming(sid, handle_for(sid), True, old, signed), (header[:300], incoming)
