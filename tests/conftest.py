"""Shared fixtures: real server processes (see servers.py), store runners, pickle spy."""

from __future__ import annotations

import signal

from clusterkit import redis_cluster  # noqa: F401 - the session's Cluster
from sentinelkit import sentinel_group  # noqa: F401 - the session's Sentinel group
from servers import *  # noqa: F403 - the server fixtures


def pytest_configure() -> None:
    """Let the processes the suite starts take Ctrl-C (SIGINT) as a terminal would send it.

    A shell script that runs the suite in the background (``make test &``) starts it with
    SIGINT ignored, every child inherits that, and a Python child then never sees
    KeyboardInterrupt: the tests that press Ctrl-C on a server would wait for nothing.
    """
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
