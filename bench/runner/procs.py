"""App processes: start one registry app in its own process group on chosen CPUs, wait until it
answers, read the CPU time of the whole group, stop the group."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from registry import App

CLK_TCK = os.sysconf("SC_CLK_TCK")
TASKSET = shutil.which("taskset")


class StartError(Exception):
    """The app did not come up; the message is the reason shown in the report."""


def split_cpus() -> tuple[list[int], list[int]]:
    """(app CPUs, load generator CPUs): the first CPU for the app, the others for the rest.

    One CPU only: both get it (there is nothing to separate).
    """
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return cpus, cpus
    return cpus[:1], cpus[1:]


def cpu_list(cpus: Iterable[int]) -> str:
    return ",".join(str(cpu) for cpu in cpus)


def _stat_fields(pid: str | int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    return text[text.rindex(")") + 2 :].split()


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(entry.name)
            if fields is not None and int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of every process in the group.

    Children's reaped time (cutime, cstime) is included so that a worker exiting mid-run moves
    its time to its parent instead of losing it.
    """
    ticks = 0
    for pid in group_members(pgid):
        fields = _stat_fields(pid)
        if fields is not None:
            ticks += sum(int(value) for value in fields[11:15])
    return ticks / CLK_TCK


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (0 once it is gone)."""
    fields = _stat_fields(pid)
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent on anything but idling since boot (steal included: time the
    hypervisor gave to someone else is time our processes did not get)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def own_cpu_seconds() -> float:
    """CPU seconds of this process and of its reaped children (the load generator runs)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _last_lines(path: Path, count: int = 20) -> list[str]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-count:]


class AppProcess:
    """One app of the registry, listening on a free port of 127.0.0.1."""

    def __init__(
        self, app: App, *, port: int, redis_url: str, workers: int = 1, cpus: Collection[int] = ()
    ) -> None:
        self.app = app
        self.port = port
        self.workers = workers
        self.cpus = sorted(cpus)
        self.redis_url = redis_url
        self.base = f"http://127.0.0.1:{port}"
        self.log = Path(tempfile.mkstemp(prefix=f"bench-{app.name}-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        fill = {"{port}": str(self.port), "{workers}": str(self.workers)}
        argv = []
        for part in self.app.command:
            for key, value in fill.items():
                part = part.replace(key, value)
            argv.append(part)
        if self.cpus and TASKSET:
            argv = [TASKSET, "-c", cpu_list(self.cpus), *argv]
        return argv

    def start(self, timeout: float = 60.0) -> AppProcess:
        env = {**os.environ, "REDIS_URL": self.redis_url, **self.app.env}
        try:
            with self.log.open("wb") as log:
                self.proc = subprocess.Popen(
                    self.argv(),
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
        except OSError as exc:
            raise StartError(f"{type(exc).__name__}: {exc}") from exc
        if self.cpus and not TASKSET:
            # Without taskset: pin the leader before it has had time to fork its workers.
            os.sched_setaffinity(self.proc.pid, self.cpus)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                reason = self.reason() or f"exited with status {self.proc.returncode}"
                self.stop()
                raise StartError(reason)
            try:
                httpx.get(f"{self.base}/untouched", timeout=2.0)
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            return self
        self.stop()
        raise StartError(f"no answer on port {self.port} within {timeout:.0f} s")

    @property
    def pgid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def reason(self) -> str:
        """The last line the app printed, usually the exception that stopped it."""
        lines = _last_lines(self.log)
        return lines[-1].strip()[:200] if lines else ""

    def tail(self) -> str:
        return "\n".join(_last_lines(self.log))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cpu_seconds(self) -> float:
        return group_cpu_seconds(self.pgid)

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signum)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the group, then SIGKILL to whatever is left at the deadline."""
        if self.proc is None:
            return
        for signum, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            self._signal(signum)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if self.proc.poll() is not None and not group_members(self.pgid):
                    self.log.unlink(missing_ok=True)
                    return
                time.sleep(0.05)
        raise RuntimeError(f"{self.app.name} (process group {self.pgid}) did not stop")
