"""M4: the disk refuses the RDB snapshot; Redis answers MISCONF to writes.

With RDB saving configured and ``stop-writes-on-bgsave-error yes`` (the default), a failed
``BGSAVE`` makes Redis refuse every write with ``MISCONF`` until a save succeeds. Writes must be a
clean 503 (MISCONF is unavailability, not a bug), reads keep working, and once the directory is
writable again and a ``BGSAVE`` succeeds, writes are 2xx again without restarting anything.

Making the directory unwritable: ``chmod 0500`` for an ordinary user. Root ignores permissions, so
as root the server is moved (``CONFIG SET dir``) into a directory that is then removed: the
snapshot's temporary file cannot be created there either.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import redis

from redis_sessions.engine import handle_for
from redis_sessions.server import LocalServer
from tests.faults.faultkit import BUDGET, FaultApp, capture_store_log, check_invariants, figure
from tests.support.servers import MakeServer, wait_until

pytestmark = pytest.mark.faults


class BrokenDisk:
    """Makes the server's snapshot directory unwritable, and writable again."""

    def __init__(self, server: LocalServer, admin: redis.Redis, scratch: Path) -> None:
        self.server, self.admin, self.scratch = server, admin, scratch
        self.how = ""
        self._restore: list[object] = []

    def break_(self) -> None:
        data_dir = self.server.data_dir
        if os.geteuid() != 0:
            mode = stat.S_IMODE(data_dir.stat().st_mode)
            data_dir.chmod(0o500)
            self._restore.append(lambda: data_dir.chmod(mode))
            self.how = "chmod-0500"
        else:
            vanished = self.scratch / "vanished"
            vanished.mkdir()
            self.admin.config_set("dir", str(vanished))
            self._restore.append(lambda: self.admin.config_set("dir", str(data_dir)))
            vanished.rmdir()
            self.how = "dir-removed"

    def restore(self) -> None:
        while self._restore:
            undo = self._restore.pop()
            assert callable(undo)
            undo()


def session_key(cookie: str) -> str:
    return f"sess:{{{handle_for(cookie.rsplit('.', 1)[0])}}}"


def bgsave_status(admin: redis.Redis) -> str:
    """ "running", or the last BGSAVE's status: "ok" or "err"."""
    info = admin.info("persistence")
    if int(info["rdb_bgsave_in_progress"]):
        return "running"
    return str(info["rdb_last_bgsave_status"])


def bgsave(admin: redis.Redis) -> str:
    """Run a BGSAVE to its end and return its status."""
    wait_until(lambda: bgsave_status(admin) != "running", 5)
    admin.bgsave()
    outcome: list[str] = []

    def finished() -> bool:
        outcome.append(bgsave_status(admin))
        return outcome[-1] != "running"

    wait_until(
        finished,
        5,
        message="BGSAVE did not finish",
    )
    return outcome[-1]


def misconf_server(make_server: MakeServer) -> LocalServer:
    """A server that snapshots (so a failed BGSAVE stops writes) and may change its dir."""
    return make_server(
        appendonly=False,
        extra_args=[
            "--save",
            "3600 1",
            "--stop-writes-on-bgsave-error",
            "yes",
            "--enable-protected-configs",
            "yes",
        ],
    )


def test_m4_misconf_gives_503_on_writes_reads_work_recovery_after_a_good_save(
    make_server: MakeServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    capture_store_log(caplog)
    server = misconf_server(make_server)
    with FaultApp(server.url) as app, redis.Redis.from_url(server.url, socket_timeout=5) as admin:
        cookie = app.new_session(a="0")
        assert app.read(cookie) == {"a": "0"}
        disk = BrokenDisk(server, admin, tmp_path)
        try:
            disk.break_()
            assert bgsave(admin) == "err", "the snapshot did not fail"
            write = app.request("/set?b=1", cookie)
            create = app.request("/set?c=1")
            read = app.request("/get", cookie)
            disk.restore()
            saved = bgsave(admin)
        finally:
            disk.restore()
        assert saved == "ok"
        after = app.request("/set?d=1", cookie)
        fresh = app.request("/set?e=1")
        data = app.read(cookie)
        figure(
            "M4",
            broken_by=disk.how,
            write_status=write.status,
            create_status=create.status,
            read_status=read.status,
            write_seconds=write.seconds,
            after_save_write_status=after.status,
            after_save_create_status=fresh.status,
        )
        for exchange in (write, create):
            assert exchange.status == 503, f"{exchange.path} under MISCONF: {exchange.status}"
            assert exchange.seconds < BUDGET
            assert exchange.cookie is None
        assert read.ok and read.body == '{"a":"0"}'
        assert after.ok and fresh.ok
        assert data == {"a": "0", "d": "1"}
    check_invariants(app, [server], caplog=caplog)
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "redis_sessions" and r.levelname == "WARNING"
    ]
    assert warnings and all("MISCONF" in w for w in warnings), warnings


def test_m4_read_due_for_a_ttl_refresh_is_still_served_under_misconf(
    make_server: MakeServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A session last seen 2 minutes ago: reading it refreshes its TTL (touch_after is 60 s),
    # a write that Redis refuses under MISCONF. The read itself must still be served; the
    # refresh can wait for a later request.
    capture_store_log(caplog)
    server = misconf_server(make_server)
    with FaultApp(server.url) as app, redis.Redis.from_url(server.url, socket_timeout=5) as admin:
        older = app.new_session(o="1")
        key = session_key(older)
        assert admin.pexpire(key, admin.pttl(key) - 120_000)
        disk = BrokenDisk(server, admin, tmp_path)
        try:
            disk.break_()
            assert bgsave(admin) == "err", "the snapshot did not fail"
            read = app.request("/get", older)
            disk.restore()
            assert bgsave(admin) == "ok"
        finally:
            disk.restore()
        after = app.request("/get", older)
        figure("M4-touch", read_touch_due_status=read.status, after_save_status=after.status)
        assert after.ok and after.body == '{"o":"1"}'
        assert read.status == 200, (
            "a read whose TTL refresh is due answered 503 under MISCONF: the load script's "
            "PEXPIRE is refused, which fails the whole load"
        )
        assert read.body == '{"o":"1"}'
    check_invariants(app, [server], caplog=caplog)
