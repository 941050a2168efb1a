"""A local Cluster of real server processes: 3 primaries and 3 replicas (RELIABILITY.md B3).

`LocalCluster` starts six `LocalServer` processes with cluster mode on (node timeout 1 s, AOF
on), forms the cluster from Python (slot ranges, config epochs, MEET, REPLICATE: faster than
``valkey-cli --cluster create``, which waits whole seconds between its steps) and waits until
every node reports ``cluster_state:ok`` and all of them agree on the topology. It offers the
fault hooks the Cluster cases need (`LocalCluster.kill`, `LocalCluster.restart`) and the
questions they ask (`LocalCluster.primaries`, `LocalCluster.primary_of_slot`, ...), always
answered by the nodes themselves.

`redis_cluster` is a session-scoped fixture for NON-destructive use (``tests/conftest.py``
re-exports it); tests that kill or reshard build their own `LocalCluster`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from redis_sessions.server import LocalServer, find_server_binary, free_port
from tests.support.servers import wait_until

__all__ = [
    "HOST",
    "NODE_TIMEOUT_MS",
    "SLOTS",
    "LocalCluster",
    "NodeView",
    "cli_binary",
    "parse_cluster_nodes",
    "redis_cluster",
]

HOST = "127.0.0.1"
SLOTS = 16384
NODE_TIMEOUT_MS = 1000
"""``cluster-node-timeout``: a primary unreachable this long is flagged as failing."""
_PRIMARIES = 3
_START_ATTEMPTS = 3
# A node's answer to a probe comes within milliseconds; a stopped or dying one must not stall
# a poll for long.
_PROBE_TIMEOUT = 1.0


def cli_binary() -> str:
    """The ``valkey-cli``/``redis-cli`` next to the server binary (for ``--cluster reshard``)."""
    bin_dir = Path(find_server_binary()).parent
    for name in ("valkey-cli", "redis-cli"):
        candidate = bin_dir / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise FileNotFoundError(f"no valkey-cli or redis-cli in {bin_dir}")


@dataclass(frozen=True)
class NodeView:
    """One line of ``CLUSTER NODES``: a node as some node (maybe itself) sees it."""

    node_id: str
    port: int
    flags: frozenset[str]
    primary_id: str | None  # for a replica, the id of its primary
    slots: tuple[tuple[int, int], ...]  # owned ranges, inclusive
    migrations: tuple[str, ...] = ()  # "[slot->-id]" / "[slot-<-id]": slots moving in or out

    @property
    def is_primary(self) -> bool:
        return "master" in self.flags

    @property
    def failing(self) -> bool:
        return bool(self.flags & {"fail", "fail?", "handshake", "noaddr"})


def parse_cluster_nodes(text: str) -> list[NodeView]:
    """Parse the text of ``CLUSTER NODES``."""
    views = []
    for line in text.splitlines():
        if not line.strip():
            continue
        node_id, address, flags, primary, *rest = line.split()
        # ip:port@cport[,hostname]
        port = int(address.split("@")[0].rsplit(":", 1)[1])
        slots, migrations = [], []
        for item in rest[4:]:
            if item.startswith("["):  # only the node itself shows its open migrations
                migrations.append(item)
                continue
            first, _, last = item.partition("-")
            slots.append((int(first), int(last or first)))
        views.append(
            NodeView(
                node_id,
                port,
                frozenset(flags.split(",")),
                None if primary == "-" else primary,
                tuple(sorted(slots)),
                tuple(migrations),
            )
        )
    return views


class LocalCluster:
    """Six cluster-mode servers under `base_dir` (one directory each), 3 primaries + 3 replicas.

    Use as a context manager or call `start` and `stop`. Node *i* (0-2) starts as a primary of
    a third of the slots and node *i + 3* as its replica (none with ``replicas=False``);
    failovers change that, so the role questions ask the running nodes. Nodes keep their ports
    and directories (``nodes.conf``, append-only files) across `restart`.
    """

    def __init__(self, base_dir: Path, *, replicas: bool = True) -> None:
        self.base_dir = Path(base_dir)
        self.with_replicas = replicas  # False: the 3 primaries only
        self.nodes: list[LocalServer] = []
        self._ids: dict[int, str] = {}  # port -> node id (kept in nodes.conf across restarts)
        self._bus_ports: dict[int, int] = {}  # port -> cluster bus port

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, timeout: float = 20.0) -> LocalCluster:
        """Start the six nodes, form the cluster and wait until it is healthy (`wait_ok`).

        Whatever was started is stopped again when this fails.
        """
        try:
            for index in range(2 * _PRIMARIES if self.with_replicas else _PRIMARIES):
                self.nodes.append(self._start_node(index))
            self._form(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_node(self, index: int) -> LocalServer:
        node_dir = self.base_dir / f"node-{index}"
        for attempt in range(_START_ATTEMPTS):
            # The bus port is given explicitly: the default (port + 10000) may be taken, or
            # beyond 65535 for a high ephemeral port.
            port, bus_port = free_port(HOST), free_port(HOST)
            server = LocalServer(
                data_dir=node_dir, port=port, appendonly=True, appendfsync="everysec",
                extra_args=[
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", str(node_dir / "nodes.conf"),
                    "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                    "--cluster-port", str(bus_port),
                    "--cluster-announce-ip", HOST,
                    # A replica restarted after its primary died may still be elected.
                    "--cluster-replica-validity-factor", "0",
                    # Full syncs start at once instead of waiting 5 s for more replicas.
                    "--repl-diskless-sync-delay", "0",
                ],
            )  # fmt: skip
            try:
                server.start()
                self._bus_ports[port] = bus_port
                return server
            except RuntimeError as exc:
                # Another process took one of the two ports between free_port and the bind.
                if "Address already in use" not in str(exc) or attempt == _START_ATTEMPTS - 1:
                    raise
                (node_dir / "nodes.conf").unlink(missing_ok=True)
        raise AssertionError("unreachable")

    def _form(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            self._ids[node.port] = self._call(node, "CLUSTER", "MYID")
        primaries, replicas = self.nodes[:_PRIMARIES], self.nodes[_PRIMARIES:]
        bounds = [SLOTS * i // _PRIMARIES for i in range(_PRIMARIES + 1)]
        for i, node in enumerate(primaries):
            self._call(node, "CLUSTER", "ADDSLOTSRANGE", str(bounds[i]), str(bounds[i + 1] - 1))
        # Distinct epochs before the nodes meet, so no epoch collision has to be resolved.
        for epoch, node in enumerate(self.nodes, start=1):
            self._call(node, "CLUSTER", "SET-CONFIG-EPOCH", str(epoch))
        for node in self.nodes[1:]:
            self._call(
                self.nodes[0],
                "CLUSTER",
                "MEET",
                HOST,
                str(node.port),
                str(self._bus_ports[node.port]),
            )

        def all_known() -> bool:
            # REPLICATE needs the primary known to the replica; voting needs everyone known.
            for node in self.nodes:
                views = parse_cluster_nodes(self._call(node, "CLUSTER", "NODES"))
                if len(views) != len(self.nodes) or any(v.failing for v in views):
                    return False
            return True

        wait_until(
            all_known, max(deadline - time.monotonic(), 0.1), message="the nodes did not all meet"
        )
        for primary, replica in zip(primaries, replicas, strict=self.with_replicas):
            self._call(replica, "CLUSTER", "REPLICATE", self._ids[primary.port])
        self.wait_ok(max(deadline - time.monotonic(), 0.1))

    def stop(self) -> None:
        """Stop every node started (by its PID), even after a partial start; idempotent."""
        errors: list[BaseException] = []
        for node in self.nodes:
            try:
                node.stop(timeout=3.0)
            except Exception as exc:  # keep stopping the others
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> LocalCluster:
        """Start the cluster unless it was started already."""
        if not self.nodes:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop every node."""
        self.stop()

    # -- faults ---------------------------------------------------------------------------------

    def kill(self, node: LocalServer) -> None:
        """Crash `node`: SIGKILL to its PID, nothing flushed."""
        node.kill()

    def restart(self, node: LocalServer, timeout: float = 10.0) -> None:
        """Start `node` again on its port and directory (same node id, AOF replayed).

        Returns once it answers PING; call `wait_ok` for the cluster to take it back.
        """
        node.restart(timeout)

    # -- questions ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``redis+cluster://`` URL whose startup nodes are the current primaries."""
        return "redis+cluster://" + ",".join(f"{HOST}:{n.port}" for n in self.primaries()) + "/"

    def running(self) -> list[LocalServer]:
        """The nodes whose process is alive."""
        return [n for n in self.nodes if n.is_running]

    def node_id(self, node: LocalServer) -> str:
        """The cluster node id of `node`."""
        return self._ids[node.port]

    def by_port(self, port: int) -> LocalServer:
        """The node listening on `port`."""
        for node in self.nodes:
            if node.port == port:
                return node
        raise KeyError(port)

    def self_view(self, node: LocalServer) -> NodeView:
        """`node` as it sees itself (the ``myself`` line of its ``CLUSTER NODES``)."""
        for view in parse_cluster_nodes(self._call(node, "CLUSTER", "NODES")):
            if "myself" in view.flags:
                return view
        raise AssertionError(f"no myself line from node {node.port}")

    def primaries(self) -> list[LocalServer]:
        """Running nodes that are primaries serving slots, as each of them says itself."""
        found = []
        for node in self.running():
            view = self.self_view(node)
            if view.is_primary and view.slots:
                found.append(node)
        return found

    def replicas(self) -> list[LocalServer]:
        """Running nodes that are replicas, as each of them says itself."""
        return [n for n in self.running() if not self.self_view(n).is_primary]

    def replica_of(self, primary: LocalServer) -> LocalServer:
        """A running replica of `primary` (the first one when several)."""
        primary_id = self.node_id(primary)
        for node in self.running():
            if self.self_view(node).primary_id == primary_id:
                return node
        raise LookupError(f"node {primary.port} has no running replica")

    def slot_map(self, node: LocalServer | None = None) -> dict[tuple[int, int], int]:
        """``{(first, last): owner port}`` as `node` (default: the first running one) sees it."""
        source = node or self.running()[0]
        return {
            rng: view.port
            for view in parse_cluster_nodes(self._call(source, "CLUSTER", "NODES"))
            if view.is_primary and not view.failing
            for rng in view.slots
        }

    def primary_of_slot(self, slot: int) -> LocalServer:
        """The node owning `slot`, per the slot map of a running node."""
        for (first, last), port in self.slot_map().items():
            if first <= slot <= last:
                return self.by_port(port)
        raise LookupError(f"slot {slot} is not served")

    def keyslot(self, key: str | bytes) -> int:
        """``CLUSTER KEYSLOT`` of `key`, asked to a running node."""
        return int(self._call(self.running()[0], "CLUSTER", "KEYSLOT", key))

    def keyslots(self, keys: Iterable[str | bytes]) -> list[int]:
        """``CLUSTER KEYSLOT`` of each key, in one pipeline to a running node."""
        with redis.Redis(
            host=HOST,
            port=self.running()[0].port,
            socket_timeout=5,
            socket_connect_timeout=_PROBE_TIMEOUT,
        ) as client:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.execute_command("CLUSTER", "KEYSLOT", key)
            return [int(slot) for slot in pipe.execute()]

    def state(self, node: LocalServer) -> str:
        """``cluster_state`` as `node` reports it (``ok`` or ``fail``)."""
        for line in self._call(node, "CLUSTER", "INFO").splitlines():
            if line.startswith("cluster_state:"):
                return line.split(":", 1)[1].strip()
        raise AssertionError(f"no cluster_state from node {node.port}")

    def failover(self, replica: LocalServer, *options: str) -> None:
        """``CLUSTER FAILOVER [FORCE|TAKEOVER]`` on `replica`: it returns at once, the switch
        happens in the background (poll `self_view`)."""
        self._call(replica, "CLUSTER", "FAILOVER", *options)

    def call(self, node: LocalServer, *args: str | bytes) -> Any:
        """Send one command to `node` on a fresh connection; its raw reply (text, not bytes)."""
        return self._raw(node, *args)

    def admin(self) -> RedisCluster:
        """A cluster client (bytes replies) for the tests' own checks; close it after use."""
        return RedisCluster(
            startup_nodes=[ClusterNode(HOST, n.port) for n in self.running()],
            decode_responses=False,
            socket_timeout=5,
            socket_connect_timeout=1,
        )

    def flush(self) -> None:
        """FLUSHALL on every primary (a test-only reset; replicas follow)."""
        for node in self.primaries():
            self._call(node, "FLUSHALL")

    # -- health ---------------------------------------------------------------------------------

    def problem(self) -> str | None:
        """Why the cluster is not healthy yet, or None when it is.

        Healthy: every running node says ``cluster_state:ok`` and reports the same slot map,
        which covers all slots with running primaries that claim those slots themselves; no
        running node is flagged failing by another; no slot is being imported or migrated;
        every running replica's link to its primary is up.
        """
        running = self.running()
        if not running:
            return "no node is running"
        alive = {n.port for n in running}
        reference: dict[tuple[int, int], int] | None = None
        for node in running:
            try:
                info = self._call(node, "CLUSTER", "INFO")
                views = parse_cluster_nodes(self._call(node, "CLUSTER", "NODES"))
                replication = self._call(node, "INFO", "replication")
            except redis.RedisError as exc:
                return f"node {node.port}: {type(exc).__name__}: {exc}"
            if "cluster_state:ok" not in info:
                return f"node {node.port}: cluster_state is not ok"
            slots = {rng: v.port for v in views if v.is_primary for rng in v.slots}
            if reference is None:
                reference = slots
            elif slots != reference:
                return f"node {node.port} disagrees on the slot map"
            for view in views:
                if view.port in alive and view.failing:
                    return f"node {node.port} flags {view.port} as {sorted(view.flags)}"
            me = next(v for v in views if "myself" in v.flags)
            if me.migrations:
                return f"node {node.port} has open slot migrations {list(me.migrations)}"
            if not me.is_primary and "master_link_status:up" not in replication:
                return f"replica {node.port}: link to its primary is not up"
        assert reference is not None
        covered = sum(last - first + 1 for first, last in reference)
        if covered != SLOTS:
            return f"{covered} of {SLOTS} slots are served"
        for port in set(reference.values()):
            if port not in alive:
                return f"slots still owned by the stopped node {port}"
            own = self.self_view(self.by_port(port))
            if not own.is_primary:
                return f"node {port} owns slots in the map but is not a primary itself"
        return None

    def wait_ok(self, timeout: float = 15.0) -> float:
        """Wait until the cluster is healthy (`problem` is None); return the seconds it took.

        Raises AssertionError with the last problem seen when `timeout` passes first.
        """
        started = time.monotonic()
        last: list[str | None] = [None]

        def healthy() -> bool:
            last[0] = self.problem()
            return last[0] is None

        try:
            wait_until(healthy, timeout, interval=0.05)
        except AssertionError:
            raise AssertionError(f"cluster not healthy within {timeout}s: {last[0]}") from None
        return time.monotonic() - started

    # -- plumbing -------------------------------------------------------------------------------

    @staticmethod
    def _raw(node: LocalServer, *args: str | bytes) -> Any:
        # A short-lived connection: nodes restart, and a pooled socket would outlive them.
        with redis.Redis(
            host=HOST,
            port=node.port,
            decode_responses=True,
            socket_timeout=_PROBE_TIMEOUT,
            socket_connect_timeout=_PROBE_TIMEOUT,
        ) as client:
            client.response_callbacks.clear()  # the raw text, not redis-py's parsed forms
            return client.execute_command(*args)

    @classmethod
    def _call(cls, node: LocalServer, *args: str | bytes) -> str:
        return str(cls._raw(node, *args))

    def __repr__(self) -> str:
        """Ports and liveness of the nodes."""
        nodes = " ".join(f"{n.port}{'' if n.is_running else '(down)'}" for n in self.nodes)
        return f"<LocalCluster {nodes}>"


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One healthy Cluster for the whole session, for tests that do not harm it (no kills, no
    resharding: those build their own)."""
    cluster = LocalCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
