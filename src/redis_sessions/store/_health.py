"""Classifying Redis errors once, and logging outages once (not once per request)."""

from __future__ import annotations

import logging
import socket
import ssl
import time

from redis import exceptions as rx
from redis.asyncio.sentinel import MasterNotFoundError as AsyncMasterNotFoundError
from redis.sentinel import MasterNotFoundError

from .._errors import StoreUnavailableError

__all__ = ["Health", "classify"]

logger = logging.getLogger("redis_sessions")

# Error replies that mean "Redis cannot serve this now", not "this request is wrong". NOREPLICAS
# and MISCONF have no exception class in redis-py: they arrive as plain ResponseError.
_UNAVAILABLE_PREFIXES = (
    "LOADING",
    "READONLY",
    "OOM",
    "NOREPLICAS",
    "MISCONF",
    "CLUSTERDOWN",
    "MASTERDOWN",
    "TRYAGAIN",
    "BUSY",
    "NOTBUSY",
    "MASTER_DOWN",
)


def _script_error_code(message: str) -> str:
    # Errors raised inside a script keep their code, possibly after a "Error running script"
    # preamble on old servers.
    for word in message.replace(":", " ").split():
        if word.isupper() and word in _UNAVAILABLE_PREFIXES:
            return word
    return message.split(" ", 1)[0]


# OpenSSL's X509_V_ERR_{HOSTNAME,EMAIL,IP_ADDRESS}_MISMATCH: Python appends the host to their
# message, and a reason must stay host-free.
_MISMATCH_CODES = {62: "hostname mismatch", 63: "email mismatch", 64: "IP address mismatch"}


def _tls_reason(exc: BaseException) -> str | None:
    """Name the TLS failure behind a connection error: redis-py re-raises it as a plain
    ConnectionError whose message holds the host, so the reason would only say "connection"."""
    seen = 0
    cause: BaseException | None = exc
    while cause is not None and seen < 8:  # bounded: a chain could loop
        if isinstance(cause, ssl.SSLCertVerificationError):
            detail = _MISMATCH_CODES.get(cause.verify_code) or cause.verify_message
            return f"TLS: certificate verify failed: {detail}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS: {getattr(cause, 'reason', None) or 'error'}"
        cause = cause.__cause__ or cause.__context__
        seen += 1
    return None


def _sentinel_reason(message: str) -> str:
    # redis-py: "No master found for 'svc' : <sentinel> - <error>, ..." (one entry per Sentinel
    # that could not be asked); the entries hold addresses, the reason only their count.
    head, _, errors = message.partition(" : ")
    service = head.removeprefix("No master found for ")
    unreachable = errors.count(" - ")
    tail = f"; {unreachable} Sentinel(s) unreachable" if unreachable else ""
    return f"Sentinel: no master for {service}{tail}"


# Replies that mean "this server is too old for what the store sends": answered with 503 like an
# outage (an upgraded server, or a failover to a newer one, ends it) but logged as an ERROR.
# Before 7.0 a script header (`#!lua flags=no-writes`, the read script's) does not compile.
UNSUPPORTED_SERVER = (
    "unsupported server: older than Redis 7.0 (it cannot compile the "
    "'#!lua flags=' script header); redis-sessions needs Redis 7.0+ or "
    "Valkey 7.2+"
)
UNSUPPORTED_WAITAOF = (
    "unsupported server: wait_aof needs WAITAOF, which Redis 7.2+ and Valkey 7.2+ have"
)


def _unsupported(message: str) -> str | None:
    if "Error compiling script" in message and "near '#'" in message:
        return UNSUPPORTED_SERVER
    # 'WAITAOF' on 7.0 and 7.1, `WAITAOF` before.
    if message.lower().replace("`", "'").startswith("unknown command 'waitaof'"):
        return UNSUPPORTED_WAITAOF
    return None


def classify(exc: BaseException) -> StoreUnavailableError | None:
    """Return a `StoreUnavailableError` when `exc` means Redis cannot serve, else None.

    Connection errors (including LOADING and an exhausted pool: "no free connection"),
    timeouts and the error replies LOADING, READONLY, OOM, NOREPLICAS, MISCONF, CLUSTERDOWN,
    MASTERDOWN, TRYAGAIN and BUSY are unavailability; anything else (a bug, a wrong argument)
    is not. A server too old for the store (before Redis 7.0, or without WAITAOF for
    ``wait_aof``) is unavailable too, with a reason starting with "unsupported server: " (logged
    as an ERROR). A TLS failure (wrong CA, refused client certificate) gets a reason starting
    with "TLS: ", a refused user or password "authentication failed", a Sentinel group that names
    no usable master one starting with "Sentinel: " (with how many Sentinels could not
    be asked).
    """
    if isinstance(exc, rx.BusyLoadingError):
        return StoreUnavailableError("LOADING")
    if isinstance(exc, (MasterNotFoundError, AsyncMasterNotFoundError)):
        return StoreUnavailableError(_sentinel_reason(str(exc)))
    if isinstance(exc, rx.MaxConnectionsError):  # a ConnectionError to redis-py: name it
        return StoreUnavailableError("no free connection")
    if isinstance(exc, rx.AuthenticationError):  # a ConnectionError to redis-py: name it
        return StoreUnavailableError("authentication failed")
    if isinstance(exc, (rx.TimeoutError, socket.timeout, TimeoutError)):
        return StoreUnavailableError("timeout")
    if isinstance(exc, (rx.ConnectionError, ConnectionError, OSError)):
        return StoreUnavailableError(_tls_reason(exc) or "connection")
    if isinstance(exc, rx.ResponseError):
        # redis-py strips the code from the message of errors it has a class for
        # (OutOfMemoryError, ReadOnlyError, ...) and keeps it in `status_code`.
        code = getattr(exc, "status_code", None) or _script_error_code(str(exc))
        if code in _UNAVAILABLE_PREFIXES:
            return StoreUnavailableError(code)
        unsupported = _unsupported(str(exc))
        if unsupported is not None:
            return StoreUnavailableError(unsupported)
    if isinstance(exc, (rx.RedisClusterException, rx.ClusterError)):
        # Topology trouble the Cluster client gave up on: no node for a slot, or redirections
        # (MOVED/ASK/TRYAGAIN during a migration) past its limit ("TTL exhausted").
        return StoreUnavailableError(_tls_reason(exc) or "cluster")
    return None


# Replies refusing writes while reads still work: tracked apart, or a store that serves reads
# and refuses writes (out of memory) would log "unavailable" and "available again" in turn.
_WRITE_REFUSALS = ("OOM", "MISCONF", "NOREPLICAS", "READONLY")


class Health:
    """Tracks whether the store is reachable: one WARNING when an outage starts, one INFO when
    it ends, whatever the number of requests in between. Refused writes (OOM, MISCONF,
    NOREPLICAS, READONLY) are an outage of their own, ended by a successful write.

    With `settle` > 0 (a Cluster, where one node can fail while the others serve), the outage
    ends only with a success `settle` seconds after the last failure: otherwise every success
    on another slot would end it and the next failure start a new one. The INFO that ends an
    outage names the other reasons seen during it (e.g. a dead node, then CLUSTERDOWN)."""

    __slots__ = ("_last_failure", "_reasons", "available", "name", "settle", "writable")

    def __init__(self, name: str, settle: float = 0.0) -> None:
        self.name = name
        self.available = True
        self.writable = True
        self.settle = settle
        self._last_failure = 0.0
        self._reasons: list[str] = []

    def failed(self, exc: BaseException) -> BaseException:
        """Translate `exc`; log the start of an outage. Returns the exception to raise."""
        error = classify(exc)
        if error is None:
            return exc
        if error.reason in _WRITE_REFUSALS:
            if self.writable:
                self.writable = False
                logger.warning(
                    "session store %s refuses writes (%s); answering 503 to "
                    "requests that write until it accepts them",
                    self.name,
                    error.reason,
                )
        else:
            self._last_failure = time.monotonic()
            if self.available:
                self.available = False
                self._reasons = [error.reason]
                if error.reason.startswith("unsupported server"):
                    logger.error(
                        "session store %s: %s; answering 503 until it is replaced",
                        self.name,
                        error.reason,
                    )
                    return error
                logger.warning(
                    "session store %s unavailable (%s); answering 503 until it is back",
                    self.name,
                    error.reason,
                )
            elif error.reason not in self._reasons and len(self._reasons) < 8:
                self._reasons.append(error.reason)
        return error

    def ok(self, wrote: bool = True) -> None:
        """Record a successful command (`wrote`: it was a write); log the end of an outage."""
        if not self.available and (
            self.settle <= 0 or time.monotonic() - self._last_failure >= self.settle
        ):
            self.available = True
            also = self._reasons[1:]
            logger.info(
                "session store %s available again%s",
                self.name,
                f" (during the outage also: {', '.join(also)})" if also else "",
            )
        if wrote and not self.writable:
            self.writable = True
            logger.info("session store %s accepts writes again", self.name)
