"""`make bench`: our session middleware against its peers, on this machine; rewrites
docs/benchmarks.md and docs/benchmarks.png.

Usage::

    python bench/run.py [--apps a,b] [--seconds S] [--repeat N] [--connections C]
                        [--threads T] [--warmup S] [--no-install] [--only read,modify,...]
    python bench/run.py --report-only   # the page and the chart again, from the last results

Starts one Redis-compatible server on 127.0.0.1 (no persistence), then each app of
bench/peers/registry.py in turn with one worker pinned to the first CPU (the load generator
and Redis on the others), and measures per request type (read, modify, untouched, first):

- requests/s, p50 and p99 latency under load (wrk with a Lua script sending session cookies
  round-robin, or the asyncio fallback in runner/pyload.py without wrk); median of the runs;
- Redis round trips, commands and commands run inside scripts per request (a sequential
  probe of 100 requests), bytes stored per session, CPU time of the app and of Redis per request;

then the lost increments of ``/incr`` and ``/atomic`` (one session, 32 connections, several
workers), and ours-asgi's throughput with 1, 2 and 4 workers. ``--only`` picks from read,
modify, untouched, first, loss, scale and store (N sessions: memory per session, the store's
``length()``/``ids()``/``clear()``, the CLI's ``stats``/``purge``; bench/store_scale.py). The raw
results go to bench/runner/results.json; a run
limited by ``--apps`` or ``--only`` merges into the previous results there, so the document
keeps the other figures (marked as coming from an earlier run).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import httpx
import redis

from redis_sessions.server import LocalServer, free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The registry is imported as install.py and smoke.py import it: one module, one App class.
sys.path.insert(0, str(HERE / "peers"))
from registry import APPS, App  # noqa: E402
from runner import load, probes, report  # noqa: E402
from runner.procs import (  # noqa: E402
    AppProcess,
    StartError,
    cpu_list,
    group_members,
    machine_busy_seconds,
    own_cpu_seconds,
    process_cpu_seconds,
    split_cpus,
)

try:
    from install import install
except ImportError:  # the installer is optional: everything may be installed already
    install = None

DOC = ROOT / "docs" / "benchmarks.md"
CHART = ROOT / "docs" / "benchmarks.png"
RESULTS = HERE / "runner" / "results.json"
STAGES = (*report.CASES, "loss", "scale", "store")
SCALE_APP = "ours-asgi"
SCALE_WORKERS = (1, 2, 4)
LOSS_REQUESTS = 2000
LOSS_CONNECTIONS = 32
# Several workers, so that a sync WSGI server runs requests concurrently as well.
LOSS_WORKERS = 4
PROBE_REQUESTS = 100
FRAMEWORKS = ("redis-sessions", "starlette", "uvicorn", "flask", "gunicorn", "hiredis")
# Errors that end one measurement without ending the run.
MEASURE_ERRORS = (
    probes.ProbeError,
    load.LoadError,
    httpx.HTTPError,
    redis.RedisError,
    OSError,
    ValueError,
)

T = TypeVar("T")
_started = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - _started:6.0f} s] {message}", flush=True)


@dataclass(frozen=True)
class Settings:
    seconds: int  # whole seconds: wrk takes no fractions
    repeat: int
    connections: int
    threads: int
    warmup: int


class AppDied(Exception):
    """The app exited in the middle of a measurement."""


def attempt(proc: AppProcess, step: Callable[[], T]) -> tuple[T | None, str | None]:
    """Run one measurement: (value, None), or (None, why it failed)."""
    try:
        value = step()
    except MEASURE_ERRORS as exc:
        if not proc.alive():
            raise AppDied(f"exited: {proc.reason()}") from exc
        return None, f"{type(exc).__name__}: {exc}"[:200]
    if not proc.alive():
        raise AppDied(f"exited: {proc.reason()}")
    return value, None


def flush(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.flushall()
    finally:
        client.close()


def wait_workers(proc: AppProcess, timeout: float = 15.0) -> None:
    """With several workers, the first one answering does not mean the others are up: wait
    until the group holds the supervisor and every worker (best effort: servers differ)."""
    if proc.workers <= 1:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(group_members(proc.pgid)) < proc.workers + 1:
        time.sleep(0.1)


def measure(
    proc: AppProcess, redis_pid: int, path: str, cookies: list[str], settings: Settings
) -> dict[str, Any]:
    """Warm-up, then `settings.repeat` load runs: the median of each figure."""

    def run() -> load.LoadResult:
        return load.run(
            proc.port,
            path,
            cookies,
            seconds=settings.seconds,
            connections=settings.connections,
            threads=settings.threads,
        )

    if settings.warmup > 0:
        load.run(
            proc.port,
            path,
            cookies,
            seconds=settings.warmup,
            connections=settings.connections,
            threads=settings.threads,
        )
    samples = []
    for _ in range(settings.repeat):
        app_cpu, redis_cpu = proc.cpu_seconds(), process_cpu_seconds(redis_pid)
        busy, own = machine_busy_seconds(), own_cpu_seconds()
        result = run()
        app_cpu = proc.cpu_seconds() - app_cpu
        redis_cpu = process_cpu_seconds(redis_pid) - redis_cpu
        # Whatever else kept the CPUs busy meanwhile: other work on a shared machine.
        other = (machine_busy_seconds() - busy) - (own_cpu_seconds() - own) - app_cpu - redis_cpu
        if not proc.alive():
            raise AppDied(f"exited: {proc.reason()}")
        if result.requests == 0:
            raise load.LoadError("no request was answered")
        if result.bad_status > result.requests / 2:
            raise load.LoadError(
                f"{result.bad_status} of {result.requests} requests answered 4xx/5xx"
            )
        samples.append(
            {
                "rps": result.rps,
                "p50_ms": result.p50_ms,
                "p99_ms": result.p99_ms,
                "cpu_us": app_cpu / result.requests * 1e6,
                "redis_cpu_us": redis_cpu / result.requests * 1e6,
                "requests": result.requests,
                "errors": result.errors,
                "bad_status": result.bad_status,
                "other_cpus": max(0.0, other) / result.seconds,
            }
        )
    case: dict[str, Any] = {
        key: statistics.median(sample[key] for sample in samples)
        for key in ("rps", "p50_ms", "p99_ms", "cpu_us", "redis_cpu_us", "other_cpus")
    }
    case["runs_rps"] = [round(sample["rps"], 1) for sample in samples]
    for key in ("requests", "errors", "bad_status"):
        case[key] = sum(sample[key] for sample in samples)
    return case


def bench_cases(
    proc: AppProcess,
    app: App,
    kinds: list[str],
    server: LocalServer,
    settings: Settings,
    entry: dict[str, Any],
) -> None:
    """Probes first, on the quiet app and a small database; then the load runs."""
    cookies: list[str] = []
    session_error = None
    if app.sessions:
        entry["memory"], _ = attempt(proc, lambda: probes.probe_memory(proc.base, server.url))
        created, session_error = attempt(
            proc, lambda: probes.create_sessions(proc.base, app.cookie, settings.connections)
        )
        cookies = created or []
    for kind in kinds:
        if session_error and kind != "first":
            entry["probes"][kind] = {"error": session_error}
            continue
        cookie = None if kind == "first" or not cookies else cookies[0]
        probe, error = attempt(
            proc,
            lambda kind=kind, cookie=cookie: probes.probe_commands(
                proc.base, server.url, report.PATHS[kind], cookie, PROBE_REQUESTS
            ),
        )
        entry["probes"][kind] = probe or {"error": error}
        log(
            f"{app.name} {kind}: probe "
            + (
                f"{report.num(probe['round_trips'])} round trips, "
                f"{report.num(probe['commands'])} commands, "
                f"{report.num(probe['in_scripts'])} in scripts"
                if probe
                else str(error)
            )
        )
    for kind in kinds:
        if session_error and kind != "first":
            entry["cases"][kind] = {"error": session_error}
            continue
        case, error = attempt(
            proc,
            lambda kind=kind: measure(
                proc, server.pid, report.PATHS[kind], [] if kind == "first" else cookies, settings
            ),
        )
        entry["cases"][kind] = case or {"error": error}
        log(
            f"{app.name} {kind}: "
            + (
                f"{case['rps']:,.0f} req/s (runs {case['runs_rps']}), p50 {case['p50_ms']:.2f} ms, "
                f"p99 {case['p99_ms']:.2f} ms, {case['cpu_us']:.0f} CPU µs/req, "
                f"other load {case['other_cpus']:.2f} CPU"
                if case
                else str(error)
            )
        )


def bench_loss(app: App, server: LocalServer, cpus: list[int]) -> dict[str, Any]:
    flush(server.url)
    out: dict[str, Any] = {"workers": LOSS_WORKERS}
    try:
        proc = AppProcess(
            app, port=free_port(), redis_url=server.url, workers=LOSS_WORKERS, cpus=cpus
        ).start()
    except StartError as exc:
        out["error"] = f"failed to start: {exc}"
        return out
    try:
        wait_workers(proc)
        paths = {"incr": "/incr", **({"atomic": "/atomic"} if app.atomic else {})}
        for key, path in paths.items():
            value, error = attempt(
                proc,
                lambda path=path: probes.lost_increments(
                    proc.port, app.cookie, path, LOSS_REQUESTS, LOSS_CONNECTIONS
                ),
            )
            out[key] = value or {"error": error}
            log(
                f"{app.name} lost increments {path}: "
                + (f"{value['lost']} of {value['ok']}" if value else str(error))
            )
    except AppDied as exc:
        out["error"] = str(exc)
    finally:
        proc.stop()
    return out


def bench_app(
    app: App,
    only: set[str],
    server: LocalServer,
    settings: Settings,
    app_cpus: list[int],
    all_cpus: list[int],
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "label": app.label,
        "group": app.group,
        "sessions": app.sessions,
        "atomic": app.atomic,
        "status": None,
        "cases": {},
        "probes": {},
    }
    kinds = [
        kind for kind in report.CASES if kind in only and (app.sessions or kind == "untouched")
    ]
    if kinds:
        flush(server.url)
        log(f"{app.name}: starting ({app.label})")
        try:
            proc = AppProcess(app, port=free_port(), redis_url=server.url, cpus=app_cpus).start()
        except StartError as exc:
            entry["status"] = f"failed to start: {exc}"
            log(f"{app.name}: {entry['status']}")
            return entry
        try:
            bench_cases(proc, app, kinds, server, settings, entry)
        except AppDied as exc:
            for kind in kinds:
                entry["cases"].setdefault(kind, {"error": str(exc)})
            log(f"{app.name}: {exc}\n{proc.tail()}")
        finally:
            proc.stop()
    if "loss" in only and app.sessions:
        entry["loss"] = bench_loss(app, server, all_cpus)
    return entry


def bench_scale(
    app: App, server: LocalServer, settings: Settings, cpus: list[int]
) -> dict[str, Any]:
    rows: dict[str, dict[str, Any]] = {}
    for workers in SCALE_WORKERS:
        flush(server.url)
        row = rows[str(workers)] = {}
        try:
            proc = AppProcess(
                app, port=free_port(), redis_url=server.url, workers=workers, cpus=cpus
            ).start()
        except StartError as exc:
            row.update({kind: {"error": f"failed to start: {exc}"} for kind in ("read", "modify")})
            continue
        try:
            wait_workers(proc)
            cookies, error = attempt(
                proc,
                lambda proc=proc: probes.create_sessions(
                    proc.base, app.cookie, settings.connections
                ),
            )
            for kind in ("read", "modify"):
                if error or not cookies:
                    row[kind] = {"error": error}
                    continue
                case, case_error = attempt(
                    proc,
                    lambda kind=kind, proc=proc, cookies=cookies: measure(
                        proc, server.pid, report.PATHS[kind], cookies, settings
                    ),
                )
                row[kind] = case or {"error": case_error}
                log(
                    f"{app.name} x {workers} workers {kind}: "
                    + (f"{case['rps']:,.0f} req/s" if case else str(case_error))
                )
        except AppDied as exc:
            for kind in ("read", "modify"):
                row.setdefault(kind, {"error": str(exc)})
        finally:
            proc.stop()
    return {"app": app.name, "workers": list(SCALE_WORKERS), "rows": rows}


# -- what the page says about the machine and the software ------------------------------------


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    os_name = platform.platform()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return {"cpu": cpu, "cpus": os.cpu_count(), "os": os_name, "kernel": platform.release()}


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _npm_versions(app: App) -> dict[str, str]:
    """Versions of the direct dependencies installed beside the app's script."""
    found: dict[str, str] = {}
    for part in app.command:
        folder = Path(part).parent
        manifest = folder / "package.json"
        if not Path(part).is_file() or not manifest.is_file():
            continue
        for dep in json.loads(manifest.read_text()).get("dependencies", {}):
            installed = folder / "node_modules" / dep / "package.json"
            if installed.is_file():
                found[dep] = json.loads(installed.read_text()).get("version", "?")
        break
    return found


def versions(apps: list[App], server_version: str) -> dict[str, str]:
    found = {
        "Python": platform.python_version(),
        "redis-py": metadata.version("redis"),
        "server": server_version,
    }
    names = list(FRAMEWORKS)
    for app in apps:
        for need in app.needs:
            if need.startswith("pip:"):
                names.append(re.split(r"[<>=!~\[; ]", need.removeprefix("pip:"), maxsplit=1)[0])
    for name in dict.fromkeys(names):
        version = _dist_version(name)
        if version:
            found[name] = version
    if any("npm" in app.needs for app in apps):
        try:
            node = subprocess.run(
                ["node", "--version"],
                capture_output=True,
                text=True,
                timeout=10,
                start_new_session=True,
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            node = ""
        if node:
            found["node"] = node.lstrip("v")
        for app in apps:
            if "npm" in app.needs:
                found.update(_npm_versions(app))
    return found


def server_version(url: str) -> str:
    client = redis.Redis.from_url(url)
    try:
        info = client.info("server")
    finally:
        client.close()
    name = info.get("server_name", "redis")
    return f"{name} {info.get(f'{name}_version') or info.get('redis_version')}"


# -- results -------------------------------------------------------------------------------------


def _stamp(entry: dict[str, Any], run_id: str) -> None:
    """Each figure remembers its run, so a merged page can tell older ones apart."""
    for key in ("memory", "loss"):
        if entry.get(key):
            entry[key]["run"] = run_id
    for key in ("probes", "cases"):
        for record in entry.get(key, {}).values():
            record["run"] = run_id


def merge(previous: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """The previous results with this run's figures on top (an app that failed to start now
    loses its old figures: they would no longer describe it)."""
    merged = {
        "runs": {**previous.get("runs", {}), **current["runs"]},
        "latest": current["latest"],
        "apps": dict(previous.get("apps", {})),
        "scale": current.get("scale") or previous.get("scale"),
        "store": current.get("store") or previous.get("store"),
    }
    for name, entry in current["apps"].items():
        old = merged["apps"].get(name)
        if old is None or entry.get("status") or old.get("status"):
            merged["apps"][name] = entry
            continue
        new = {**old, **{k: v for k, v in entry.items() if k not in ("probes", "cases")}}
        for key in ("memory", "loss"):
            new[key] = entry.get(key) or old.get(key)
        new["probes"] = {**old.get("probes", {}), **entry.get("probes", {})}
        new["cases"] = {**old.get("cases", {}), **entry.get("cases", {})}
        merged["apps"][name] = new
    # Runs no figure refers to any more are dropped.
    used = {current["latest"]}
    for entry in merged["apps"].values():
        for key in ("memory", "loss"):
            if entry.get(key):
                used.add(entry[key].get("run"))
        for key in ("probes", "cases"):
            used.update(record.get("run") for record in entry.get(key, {}).values())
    for stage in ("scale", "store"):
        if merged[stage]:
            used.add(merged[stage].get("run"))
    merged["runs"] = {run: meta for run, meta in merged["runs"].items() if run in used}
    return merged


def write_outputs(results: dict[str, Any]) -> None:
    order = [app.name for app in APPS]
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    DOC.parent.mkdir(parents=True, exist_ok=True)
    drawn = report.chart(results, order, CHART)
    if not drawn:
        log("no chart: matplotlib is missing or no read/modify figure was measured")
    DOC.write_text(report.render(results, order, CHART.name if drawn else None))
    written = [DOC, RESULTS, *([CHART] if drawn else [])]
    log("wrote " + ", ".join(str(path.relative_to(ROOT)) for path in written))


# -- command line --------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure the session middleware against its peers; rewrite "
        "docs/benchmarks.md and docs/benchmarks.png."
    )
    parser.add_argument(
        "--apps",
        help="comma-separated app names (default: all): " + ", ".join(app.name for app in APPS),
    )
    parser.add_argument(
        "--only", help="comma-separated stages (default: all): " + ", ".join(STAGES)
    )
    parser.add_argument("--seconds", type=int, default=5, help="seconds per load run")
    parser.add_argument("--repeat", type=int, default=3, help="load runs per case (median)")
    parser.add_argument(
        "--connections",
        type=int,
        default=32,
        help="connections of the load generator (one session each)",
    )
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--warmup", type=int, default=1, help="seconds of unmeasured load before each case"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing: rewrite the page and the chart from bench/runner/results.json",
    )
    parser.add_argument(
        "--store-sessions",
        type=int,
        default=1_000_000,
        help="sessions for the store stage (memory, length/ids/clear, CLI)",
    )
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="skip bench/install.py (peers' packages, wrk, matplotlib)",
    )
    args = parser.parse_args(argv)
    names = {app.name for app in APPS}
    if args.apps:
        unknown = set(args.apps.split(",")) - names
        if unknown:
            parser.error(f"unknown app(s): {', '.join(sorted(unknown))}")
    if args.only:
        unknown = set(args.only.split(",")) - set(STAGES)
        if unknown:
            parser.error(f"unknown stage(s): {', '.join(sorted(unknown))}")
    if min(args.repeat, args.seconds, args.connections, args.threads) < 1 or args.warmup < 0:
        parser.error("--repeat, --seconds, --connections and --threads must be positive")
    if args.threads > args.connections:
        parser.error("--threads cannot exceed --connections")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.report_only:
        if not RESULTS.exists():
            log(f"{RESULTS.relative_to(ROOT)} does not exist: run the bench first")
            return 1
        write_outputs(json.loads(RESULTS.read_text()))
        return 0
    chosen = set(args.apps.split(",")) if args.apps else None
    apps = [app for app in APPS if chosen is None or app.name in chosen]
    only = set(args.only.split(",")) if args.only else set(STAGES)
    settings = Settings(args.seconds, args.repeat, args.connections, args.threads, args.warmup)
    # "make bench" with no arguments is how the page says it was made.
    command = (
        "make bench"
        if os.environ.get("MAKELEVEL") and not argv
        else shlex.join(["python", "bench/run.py", *argv])
    )

    if not args.no_install:
        if install is None:
            log("bench/install.py is missing: skipping the installation step")
        else:
            try:
                install(apps)
            except (Exception, SystemExit) as exc:  # an app that needed it fails to start
                log(f"installation incomplete: {exc!r}")

    all_cpus = sorted(os.sched_getaffinity(0))
    app_cpus, load_cpus = split_cpus()
    # Redis, wrk and the probes inherit this process's CPUs: the app keeps its own.
    os.sched_setaffinity(0, load_cpus)
    pinning = (
        f"app on CPU {cpu_list(app_cpus)}, load generator and Redis on CPU {cpu_list(load_cpus)}"
        if app_cpus != load_cpus
        else "one CPU: app, load generator and Redis share it"
    )
    tool = load.wrk_version()
    tool = (
        f"{tool}, {settings.threads} thread{'s' * (settings.threads > 1)}"
        if tool
        else "the asyncio load generator of bench/runner/pyload.py (wrk not found)"
    )

    run_id = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    server = LocalServer(appendonly=False).start()
    try:
        log(f"server on port {server.port}; {pinning}; load: {tool}")
        meta = {
            "date": run_id,
            "command": command,
            "machine": machine(),
            "versions": versions(apps, server_version(server.url)),
            "settings": {
                "seconds": settings.seconds,
                "repeat": settings.repeat,
                "connections": settings.connections,
                "threads": settings.threads,
                "warmup": settings.warmup,
                "tool": tool,
                "pinning": pinning,
            },
        }
        results: dict[str, Any] = {
            "runs": {run_id: meta},
            "latest": run_id,
            "apps": {},
            "scale": None,
        }
        for app in apps:
            entry = bench_app(app, only, server, settings, app_cpus, all_cpus)
            _stamp(entry, run_id)
            results["apps"][app.name] = entry
        scale_app = next((app for app in apps if app.name == SCALE_APP), None)
        if "scale" in only and scale_app is not None:
            log(f"{SCALE_APP}: worker scaling {SCALE_WORKERS}")
            results["scale"] = {**bench_scale(scale_app, server, settings, all_cpus), "run": run_id}
    finally:
        server.stop()
    if "store" in only:
        # On its own private server: the seeding must not share memory figures with the apps.
        log(f"store: {args.store_sessions:,} sessions")
        import store_scale

        results["store"] = {
            "count": args.store_sessions,
            "rows": store_scale.rows(args.store_sessions),
            "run": run_id,
        }

    if (args.apps or args.only) and RESULTS.exists():
        results = merge(json.loads(RESULTS.read_text()), results)
    write_outputs(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
