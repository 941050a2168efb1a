"""Child processes that die with this interpreter, even when it is killed with SIGKILL (Linux).

`popen` is `subprocess.Popen` with ``PR_SET_PDEATHSIG`` set in the child: the kernel sends it
SIGKILL when its parent goes. The parent is the *thread* that forked, so a child started from
any thread but the main one is forked by one long-lived daemon thread instead: a server
started by a short-lived thread must not die with that thread. Elsewhere than Linux it is
plain Popen (and `LocalServer`'s exit hook remains the only cleanup).
"""

from __future__ import annotations

import ctypes
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["popen"]

_PR_SET_PDEATHSIG = 1
_requests: queue.SimpleQueue[tuple[Callable[[], Any], queue.SimpleQueue[Any]]] = queue.SimpleQueue()
_forker: threading.Thread | None = None
_forker_lock = threading.Lock()


def _tie(parent: int) -> Callable[[], None]:
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before the fork

    def tie() -> None:  # runs in the child, between fork and exec
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)

    return tie


def _serve() -> None:
    while True:
        job, reply = _requests.get()
        try:
            reply.put((True, job()))
        except BaseException as exc:  # handed to the caller
            reply.put((False, exc))


def _on_forker(job: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    global _forker
    with _forker_lock:
        if _forker is None or not _forker.is_alive():
            _forker = threading.Thread(target=_serve, name="redis-sessions-forker", daemon=True)
            _forker.start()
    reply: queue.SimpleQueue[Any] = queue.SimpleQueue()
    _requests.put((job, reply))
    ok, value = reply.get()
    if not ok:
        raise value
    proc: subprocess.Popen[bytes] = value
    return proc


def popen(argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """`subprocess.Popen(argv, **kwargs)` whose process is SIGKILLed when this one dies."""
    if not sys.platform.startswith("linux"):
        return subprocess.Popen(argv, **kwargs)
    kwargs["preexec_fn"] = _tie(os.getpid())

    def job() -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, **kwargs)

    if threading.current_thread() is threading.main_thread():
        return job()
    return _on_forker(job)
