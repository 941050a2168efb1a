"""Text and JSON safety for the ``redis-sessions`` command line (no I/O, no click).

What reaches a terminal from Redis goes through `printable` or `json_text`; `json_row` is the
JSON object of one session. Units and statistics are in `redis_sessions._report`, shared with
the dashboard.
"""

from __future__ import annotations

import json
from typing import Any

from .._report import age_s
from ..store._listing import SessionInfo

__all__ = ["json_row", "json_text", "printable"]


def printable(text: str) -> str:
    """`text` with every character a terminal could act on (C0 and C1 controls such as ESC and
    CSI, DEL, bidi and other format characters) shown as ``?``: session data is user input."""
    return text if text.isprintable() else "".join(c if c.isprintable() else "?" for c in text)


def _escaped(char: str) -> str:
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a UTF-16 surrogate pair, as JSON spells characters past the BMP
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_text(document: Any, **options: Any) -> str:
    """``json.dumps(document, ensure_ascii=False, **options)`` with every non-printable
    character escaped as ``\\uXXXX``: json escapes only C0, and a C1 CSI (U+009B) would reach
    the terminal raw. Lossless: the parsed document is the same."""
    text = json.dumps(document, ensure_ascii=False, **options)
    if all(line.isprintable() for line in text.split("\n")):  # the common case, at C speed
        return text
    return "".join(c if c.isprintable() or c == "\n" else _escaped(c) for c in text)


def json_row(info: SessionInfo, now_ms: int) -> dict[str, Any]:
    """The JSON object of one session in ``ls --json`` (raw numbers, no units)."""
    age = age_s(info, now_ms)
    return {
        "key": info.key,
        "handle": info.handle,
        "user": info.user,
        "ttl_ms": info.ttl_ms,
        "created_ms": info.created_ms,
        "age_s": None if age is None else round(age, 3),
        "idle_s": info.idle_s,
        "size": info.size,
        "fields": info.fields,
    }
