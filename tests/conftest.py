"""Shared fixtures: real server processes (see servers.py), store runners, pickle spy."""

from __future__ import annotations

import os
import signal

import pytest

from redis_sessions.server import ENV_VAR
from tests.support.clusterkit import redis_cluster  # noqa: F401 - the session's Cluster
from tests.support.sentinelkit import sentinel_group  # noqa: F401 - the session's Sentinel group
from tests.support.servers import *  # noqa: F403 - the server fixtures
from tests.support.servers import TEST_SERVER_ENV, server_version, test_server_binary


def pytest_configure(config: pytest.Config) -> None:
    """Pin the server binary for every server the suite starts, here and in the CLI processes
    it runs (see `servers.test_server_binary`), and let those processes take Ctrl-C.

    A shell script that runs the suite in the background (``make test &``) starts it with
    SIGINT ignored, every child inherits that, and a Python child then never sees
    KeyboardInterrupt: the tests that press Ctrl-C on a server would wait for nothing.
    """
    os.environ[ENV_VAR] = test_server_binary()
    config.addinivalue_line(
        "markers",
        "server_version(version, reason): needs a server whose redis_version is at "
        "least `version` (skipped, saying so, on an older one)",
    )
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_report_header() -> str:
    """Which server the suite runs against (``REDIS_SESSIONS_TEST_SERVER`` to choose another)."""
    name, numbers = server_version()
    compatible = ".".join(map(str, numbers))
    return (
        f"server: {name} (redis_version {compatible}), {os.environ[ENV_VAR]} "
        f"(set {TEST_SERVER_ENV} to run another)"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a test marked ``server_version("7.2", reason=...)`` on an older server: the limit
    is the server's, and the skip names the version needed and the one running."""
    for marker in item.iter_markers("server_version"):
        needed = tuple(int(n) for n in str(marker.args[0]).split("."))
        name, numbers = server_version()
        if numbers < needed:
            why = marker.kwargs.get("reason", "")
            pytest.skip(
                f"needs Redis {marker.args[0]}+ or Valkey 7.2+"
                f"{f' ({why})' if why else ''}; the test server is {name}"
            )
