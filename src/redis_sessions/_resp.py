"""Just enough RESP2 to tell whether a freshly started server is up, and whether it is ours.

`probe` speaks AUTH, PING and INFO over a plain socket: the local server helpers must not
depend on a client library's connection pool, retries or protocol negotiation to decide that
a process they started answers. Commands go as RESP arrays rather than inline commands, so a
password with spaces survives.
"""

from __future__ import annotations

import re
import socket
from typing import Protocol

__all__ = ["UNVERIFIED_PID", "RespReader", "command", "probe"]

UNVERIFIED_PID = -1
"""`probe`'s pid when the server answers but cannot say who it is (``requirepass`` set through
extra arguments, so INFO is refused)."""

_PROCESS_ID_RE = re.compile(rb"^process_id:(\d+)\r?$", re.MULTILINE)


def command(*args: str) -> bytes:
    """One command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class _Receiver(Protocol):
    def recv(self, bufsize: int, /) -> bytes: ...


class RespReader:
    """Reads simple-string, error and bulk-string replies (PING, AUTH and INFO answers)."""

    def __init__(self, sock: _Receiver) -> None:
        """Read from `sock` (anything with ``recv``)."""
        self._sock = sock
        self._buffer = b""

    def _fill(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("server closed the connection")
        self._buffer += chunk

    def reply(self) -> tuple[bytes, bytes]:
        """Return (type byte, payload) of the next reply: b"+", b"-" or b"$" and its data.

        Raises:
            ConnectionResetError: the server closed the connection before a whole reply.
        """
        while b"\r\n" not in self._buffer:
            self._fill()
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        kind, payload = line[:1], line[1:]
        if kind != b"$":
            return kind, payload
        length = int(payload)
        if length < 0:
            return kind, b""
        while len(self._buffer) < length + 2:
            self._fill()
        data, self._buffer = self._buffer[:length], self._buffer[length + 2 :]
        return kind, data


def probe(host: str, port: int, password: str | None, timeout: float) -> tuple[int | None, str]:
    """Ask the server at host:port for PING and its pid.

    Returns (pid, "") once it answers, (None, reason) while it is not ready: refused connection,
    ``-LOADING`` while the AOF is replayed, or any other error reply. The pid is
    `UNVERIFIED_PID` when the server cannot tell it (authentication configured via extra_args).
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            reader = RespReader(sock)
            if password is not None:
                sock.sendall(command("AUTH", password))
                kind, data = reader.reply()
                if kind != b"+":
                    return None, (kind + data).decode(errors="replace")
            sock.sendall(command("PING"))
            kind, data = reader.reply()
            if kind == b"-" and data.startswith(b"NOAUTH") and password is None:
                # requirepass came in through extra_args: it is up, but INFO would be refused.
                return UNVERIFIED_PID, ""
            if (kind, data) != (b"+", b"PONG"):
                return None, (kind + data).decode(errors="replace")
            # A PONG alone could come from a foreign server that won the race for our port.
            sock.sendall(command("INFO", "server"))
            kind, data = reader.reply()
            if kind != b"$":
                return None, (kind + data).decode(errors="replace")
            match = _PROCESS_ID_RE.search(data)
            return (int(match.group(1)) if match else UNVERIFIED_PID), ""
    except OSError as exc:
        return None, f"{type(exc).__name__}: {exc}"
