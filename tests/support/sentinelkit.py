"""A Sentinel group of real local processes: 1 master, 2 replicas, 3 Sentinels (RELIABILITY.md B2).

`SentinelGroup` starts the three data servers as `LocalServer` processes (append-only file,
``everysec``), the replicas with ``--replicaof`` the master, then three Sentinels from the same
binary (``<binary> <conf> --sentinel``), each with its own writable configuration file, and waits
until the group is whole: the master streams to both replicas and every Sentinel knows the master,
both replicas and the two other Sentinels. Every process is stopped by the PID it was started
with. The fault hooks (`SentinelGroup.kill_master`, `SentinelGroup.kill_sentinel`, ...) are for
tests that own their group; the session fixture `sentinel_group` is shared and must stay intact.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from urllib.parse import urlencode

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from redis_sessions import _tied
from redis_sessions.server import LocalServer, find_server_binary, free_port
from tests.support.servers import wait_until

__all__ = ["SentinelGroup", "SentinelProcess", "sentinel_group"]

HOST = "127.0.0.1"
READY_TIMEOUT = 20.0
"""Seconds for a whole group to come up (Sentinels discover each other by 2-second hellos)."""
_PROBE_TIMEOUT = 0.5  # a local process that takes longer to answer is not ready


def _info(client: redis.Redis, section: str) -> dict[str, str]:
    """``INFO <section>`` as flat ``{field: value}`` strings (``slave0`` as ``ip=...,state=...``).

    redis-py parses the reply into typed values and nested dicts; strings compare simply.
    """
    fields: dict[str, str] = {}
    for key, value in client.info(section).items():
        if isinstance(value, dict):
            value = ",".join(f"{k}={v}" for k, v in value.items())
        fields[str(key)] = str(value)
    return fields


def _client(port: int, timeout: float = _PROBE_TIMEOUT, password: str | None = None) -> redis.Redis:
    # No retries: a probe that fails is simply asked again by the next poll.
    return redis.Redis(
        host=HOST,
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        password=password,
        decode_responses=True,
    )


class SentinelProcess:
    """One ``<binary> <conf> --sentinel`` child process on 127.0.0.1.

    The configuration file is written at the first start only: a Sentinel rewrites it with what
    it learnt (current master, peers, epoch, its own id), and a restart must keep that, as a
    restarted Sentinel does in production.
    """

    def __init__(
        self,
        data_dir: Path,
        master_port: int,
        service: str,
        *,
        quorum: int = 2,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 5000,
        binary: str | None = None,
        password: str | None = None,
        master_password: str | None = None,
    ) -> None:
        """Configure the Sentinel (monitoring 127.0.0.1:`master_port` as `service`); with
        `password` it asks clients for one (``requirepass``), with `master_password` it gives
        one to the servers it watches (``auth-pass``)."""
        self.data_dir = Path(data_dir).absolute()
        self.master_port = master_port
        self.service = service
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.binary = binary
        self.password = password
        self.master_password = master_password
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def conf_path(self) -> Path:
        """The Sentinel's own configuration file (rewritten by the Sentinel)."""
        return self.data_dir / "sentinel.conf"

    @property
    def log_path(self) -> Path:
        """The Sentinel's log; start-up errors on stderr go there too."""
        return self.data_dir / "sentinel.log"

    @property
    def pid(self) -> int:
        """Process id of the Sentinel started last."""
        if self._proc is None:
            raise RuntimeError("the sentinel has not been started")
        return self._proc.pid

    @property
    def is_running(self) -> bool:
        """True while the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def _write_conf(self, port: int) -> None:
        self.conf_path.write_text(
            "\n".join(
                [
                    f"port {port}",
                    f"bind {HOST}",
                    f"dir {self.data_dir}",
                    f"logfile {self.log_path}",
                    "daemonize no",
                    f"sentinel monitor {self.service} {HOST} {self.master_port} {self.quorum}",
                    f"sentinel down-after-milliseconds {self.service} {self.down_after_ms}",
                    f"sentinel failover-timeout {self.service} {self.failover_timeout_ms}",
                    f"sentinel parallel-syncs {self.service} 1",
                    "sentinel resolve-hostnames no",
                    *([f"requirepass {self.password}"] if self.password else []),
                    *(
                        [f"sentinel auth-pass {self.service} {self.master_password}"]
                        if self.master_password
                        else []
                    ),
                    "",
                ]
            )
        )

    def start(self, timeout: float = 10.0) -> SentinelProcess:
        """Start the Sentinel and return once it answers PING (a no-op when running).

        The first start picks a free port, and another one if that port was taken meanwhile
        (3 attempts). A restart keeps the port and the rewritten configuration.
        """
        if self.is_running:
            return self
        binary = self.binary or find_server_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        first = self.port is None
        attempts = 3 if first else 1
        for attempt in range(attempts):
            port = free_port(HOST) if first else self.port
            assert port is not None
            if first:  # a fresh file naming the port just chosen
                self._write_conf(port)
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            try:
                self._launch(binary, port, timeout)
            except RuntimeError:
                log = self.log_path.read_bytes()[offset:].decode(errors="replace")
                if "Address already in use" in log and attempt + 1 < attempts:
                    continue
                raise
            self.port = port
            return self
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _launch(self, binary: str, port: int, timeout: float) -> None:
        with self.log_path.open("ab") as log:
            proc = _tied.popen(
                [binary, str(self.conf_path), "--sentinel"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        self._proc = proc

        def answers() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"sentinel exited with code {proc.returncode} while starting "
                    f"on port {port}; see {self.log_path}"
                )
            try:
                with _client(port, password=self.password) as client:
                    # The pid tells our process from a foreign one that won the port.
                    return int(_info(client, "server").get("process_id", -1)) == proc.pid
            except (redis.RedisError, OSError, ValueError):
                return False

        try:
            wait_until(answers, timeout, message=f"sentinel on port {port} did not answer PING")
        except BaseException:
            self.kill()
            raise

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds; idempotent."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """SIGKILL and wait for the process; idempotent."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def client(self, timeout: float = _PROBE_TIMEOUT) -> redis.Redis:
        """A new sync client (str replies) to this Sentinel; the caller closes it."""
        if self.port is None:
            raise RuntimeError("the sentinel has not been started")
        return _client(self.port, timeout, self.password)

    def master_state(self) -> dict[str, str] | None:
        """``SENTINEL MASTER <service>`` as strings, or None when the Sentinel does not answer."""
        try:
            with self.client() as client:
                reply = client.execute_command("SENTINEL", "MASTER", self.service)
        except (redis.RedisError, OSError):
            return None
        if isinstance(reply, dict):  # redis-py parses this reply for some protocol versions
            return {str(k): str(v) for k, v in reply.items()}
        return {str(k): str(v) for k, v in zip(reply[::2], reply[1::2])}

    def master_address(self) -> tuple[str, int] | None:
        """``SENTINEL get-master-addr-by-name``, or None when it does not answer."""
        try:
            with self.client() as client:
                reply = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
        except (redis.RedisError, OSError):
            return None
        if not reply:
            return None
        return str(reply[0]), int(reply[1])

    def __repr__(self) -> str:
        """Port and state."""
        if self._proc is None:
            state = "not started"
        else:
            state = f"running pid={self.pid}" if self.is_running else "exited"
        return f"<SentinelProcess {HOST}:{self.port} {state}>"


class SentinelGroup:
    """1 master + 2 replicas + 3 Sentinels monitoring them as `service`, all local processes.

    Nothing runs until `start` (or ``with SentinelGroup(path) as group:``). `servers` keeps
    the three data servers in start order (index 0 was the first master); which one is master
    now is `master` (asked to the Sentinels). `stop` stops everything started, even after a
    partial start.
    """

    def __init__(
        self,
        base_dir: Path,
        service: str = "mymaster",
        *,
        server_args: Sequence[str] = ("--enable-debug-command", "yes"),
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 5000,
        binary: str | None = None,
    ) -> None:
        """Configure the group under `base_dir` (one sub-directory per process).

        `server_args` go to every data server (the default allows ``DEBUG SLEEP``, which the
        hang case needs).
        """
        self.base_dir = Path(base_dir).absolute()
        self.service = service
        self.server_args = tuple(server_args)
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.binary = binary
        self.servers: list[LocalServer] = []
        self.sentinels: list[SentinelProcess] = []

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, timeout: float = READY_TIMEOUT) -> SentinelGroup:
        """Start every process and wait until the group is whole (see `wait_ready`)."""
        binary = self.binary or find_server_binary()
        try:
            master = self._new_server(0, binary, ())
            master.start()
            for i in (1, 2):
                self._new_server(i, binary, ("--replicaof", HOST, str(master.port))).start()
            # Replicas first: a Sentinel's first INFO of the master then lists both.
            wait_until(
                lambda: self._streaming(master, 2),
                timeout,
                message="the replicas did not sync with the master",
            )
            for i in range(3):
                sentinel = SentinelProcess(
                    self.base_dir / f"sentinel-{i}",
                    master.port,
                    self.service,
                    down_after_ms=self.down_after_ms,
                    failover_timeout_ms=self.failover_timeout_ms,
                    binary=binary,
                )
                self.sentinels.append(sentinel)
                sentinel.start()
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _new_server(self, i: int, binary: str, args: Sequence[str]) -> LocalServer:
        # A full sync starts at once instead of after the default 5 s of waiting for more
        # replicas: the group comes up, and a restarted server catches up, in well under 1 s.
        server = LocalServer(
            data_dir=self.base_dir / f"server-{i}",
            appendonly=True,
            appendfsync="everysec",
            binary=binary,
            extra_args=[*args, "--repl-diskless-sync-delay", "0", *self.server_args],
        )
        self.servers.append(server)
        return server

    def stop(self) -> None:
        """Stop every process started, Sentinels first (so none reconfigures a stopping server),
        then the replicas, then the master (a master with replicas waits up to a second for
        their acknowledgement before it exits).

        Keeps going when one stop fails and raises the first error at the end.
        """
        errors: list[BaseException] = []
        servers = sorted(self.servers, key=lambda server: self.role(server) == "master")
        processes: list[SentinelProcess | LocalServer] = [*self.sentinels, *servers]
        for process in processes:
            try:
                process.stop()
            except Exception as exc:  # keep stopping the others
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> SentinelGroup:
        """Start the group."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the group."""
        self.stop()

    # -- state ------------------------------------------------------------------------------

    @staticmethod
    def _streaming(master: LocalServer, replicas: int) -> bool:
        """`master` has `replicas` replicas online (past the initial sync)."""
        try:
            with _client(master.port) as client:
                info = _info(client, "replication")
        except (redis.RedisError, OSError):
            return False
        online = [v for k, v in info.items() if k.startswith("slave") and "state=online" in v]
        return info.get("role") == "master" and len(online) >= replicas

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait until the master streams to both replicas and every Sentinel reports that
        master with ``num-slaves`` 2 and ``num-other-sentinels`` 2."""

        def whole() -> bool:
            address = self.master_address()
            if address is None:
                return False
            master = self.server_on(address[1])
            if not self._streaming(master, 2):
                return False
            for sentinel in self.sentinels:
                state = sentinel.master_state()
                if (
                    state is None
                    or state.get("port") != str(master.port)
                    or state.get("flags") != "master"
                    or state.get("num-slaves") != "2"
                    or state.get("num-other-sentinels") != "2"
                ):
                    return False
            return True

        wait_until(
            whole,
            timeout,
            interval=0.05,
            message=(f"the Sentinel group did not come together: {self.describe()}"),
        )

    def describe(self) -> str:
        """One line per Sentinel's view of the master (for failure messages)."""
        views = []
        for i, sentinel in enumerate(self.sentinels):
            state = sentinel.master_state() if sentinel.is_running else None
            keys = ("port", "flags", "num-slaves", "num-other-sentinels")
            views.append(
                f"sentinel {i}: "
                + ("no answer" if state is None else ", ".join(f"{k}={state.get(k)}" for k in keys))
            )
        return "; ".join(views)

    @property
    def sentinel_ports(self) -> list[int]:
        """Ports of the three Sentinels (fixed once started)."""
        return [s.port for s in self.sentinels if s.port is not None]

    def url(self, db: int = 0, **query: str) -> str:
        """``redis+sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/<service>/<db>[?k=v]``."""
        hosts = ",".join(f"{HOST}:{port}" for port in self.sentinel_ports)
        suffix = f"?{urlencode(query)}" if query else ""
        return f"redis+sentinel://{hosts}/{self.service}/{db}{suffix}"

    def server_on(self, port: int) -> LocalServer:
        """The data server listening on `port`."""
        for server in self.servers:
            if server.port == port:
                return server
        raise LookupError(f"no server of the group on port {port}")

    def master_address(self) -> tuple[str, int] | None:
        """The master address given by the first running Sentinel that answers, or None."""
        for sentinel in self.sentinels:
            if sentinel.is_running:
                address = sentinel.master_address()
                if address is not None:
                    return address
        return None

    def master(self) -> LocalServer:
        """The server the Sentinels name as master now (the first one that answers)."""
        address = self.master_address()
        if address is None:
            raise RuntimeError("no Sentinel answers get-master-addr-by-name")
        return self.server_on(address[1])

    def replicas(self) -> list[LocalServer]:
        """The running servers other than the current master."""
        master = self.master()
        return [s for s in self.servers if s is not master and s.is_running]

    def admin(self) -> redis.Redis:
        """A sync client (bytes replies) to the current master; the caller closes it."""
        return redis.Redis(
            host=HOST, port=self.master().port, socket_timeout=5, decode_responses=False
        )

    def flush(self) -> None:
        """FLUSHALL on the master (a test-only convenience) and wait for the replicas."""
        with self.admin() as client:
            client.flushall()
        self.wait_replicas_synced()

    @staticmethod
    def role(server: LocalServer) -> str | None:
        """``role`` from ``INFO replication`` (master/slave), or None when it does not answer."""
        if not server.is_running:
            return None
        try:
            with _client(server.port) as client:
                return _info(client, "replication").get("role")
        except (redis.RedisError, OSError):
            return None

    def wait_replicas_synced(self, timeout: float = 10.0) -> None:
        """Wait until every running replica has ``master_link_status:up`` to the current master
        and its offset equals the master's (both replicas, unless one was stopped)."""

        def synced() -> bool:
            try:
                master = self.master()
                replicas = [s for s in self.servers if s is not master and s.is_running]
                with _client(master.port) as client:
                    offset = _info(client, "replication").get("master_repl_offset")
                for replica in replicas:
                    with _client(replica.port) as client:
                        info = _info(client, "replication")
                    if (
                        info.get("master_port") != str(master.port)
                        or info.get("master_link_status") != "up"
                        or info.get("slave_repl_offset") != offset
                    ):
                        return False
            except (redis.RedisError, OSError, RuntimeError):
                return False
            return True

        wait_until(synced, timeout, message="the replicas did not catch up with the master")

    # -- faults -----------------------------------------------------------------------------

    def kill_master(self) -> LocalServer:
        """SIGKILL the current master (nothing flushed); return it."""
        master = self.master()
        master.kill()
        return master

    def restart(self, server: LocalServer, timeout: float = 10.0) -> LocalServer:
        """Start `server` again (same port and directory) after `LocalServer.kill` or stop.

        A server that is not the current master is pointed at it at once with ``REPLICAOF``:
        its command line still names the master of the first start, and without a config
        file the Sentinels cannot rewrite that.
        """
        server.restart(timeout)
        address = self.master_address()
        if address is not None and address[1] != server.port:
            with _client(server.port, 5) as client:
                client.execute_command("REPLICAOF", address[0], str(address[1]))
        return server

    def kill_sentinel(self, i: int) -> SentinelProcess:
        """SIGKILL Sentinel `i`; return it."""
        self.sentinels[i].kill()
        return self.sentinels[i]

    def start_sentinel(self, i: int, timeout: float = 10.0) -> SentinelProcess:
        """(Re)start Sentinel `i` on its port with its rewritten configuration."""
        return self.sentinels[i].start(timeout)

    def wait_for_new_master(self, old_port: int, timeout: float = 15.0) -> float:
        """Wait until every running Sentinel names the same master, not on `old_port`, and
        that server says it is a master; return the seconds waited."""
        started = time.monotonic()

        def promoted() -> bool:
            answers = {s.master_address() for s in self.sentinels if s.is_running}
            if len(answers) != 1:
                return False
            (address,) = answers
            if address is None or address[1] == old_port:
                return False
            return self.role(self.server_on(address[1])) == "master"

        wait_until(
            promoted, timeout, message=(f"no new master within {timeout}s: {self.describe()}")
        )
        return time.monotonic() - started

    def __repr__(self) -> str:
        """Ports of servers and Sentinels."""
        servers = ",".join(str(s.port) if s.is_running else "-" for s in self.servers)
        return f"<SentinelGroup {self.service} servers={servers} sentinels={self.sentinel_ports}>"


@pytest.fixture(scope="session")
def sentinel_group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    """One started group for the whole session, for tests that leave it intact (no kills,
    no failover; `SentinelGroup.flush` is fine). Destructive tests start their own."""
    group = SentinelGroup(tmp_path_factory.mktemp("sentinel-group"))
    group.start()
    try:
        yield group
    finally:
        group.stop()
