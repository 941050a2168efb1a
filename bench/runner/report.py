"""docs/benchmarks.md and docs/benchmarks.png from the results of `bench/run.py`.

The results are plain JSON (see run.py): ``runs`` (what each run was: date, command, machine,
versions, settings), ``latest`` (the run that wrote the document), ``apps`` (per app: status,
memory, probes and load cases per request type, lost increments) and ``scale``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CASES = ("read", "modify", "untouched", "first")
PATHS = {"read": "/read", "modify": "/incr", "untouched": "/untouched", "first": "/incr"}
TITLES = {
    "read": "Read: `GET /read` with a session cookie",
    "modify": "Modify: `GET /incr` with a session cookie (n = n + 1)",
    "untouched": "Untouched: `GET /untouched` with a session cookie, the session never used",
    "first": "First visit: `GET /incr` without a cookie (a new session is written)",
}
# Round trips per request type that the design promises for our middleware.
ROUND_TRIP_TARGETS = {"untouched": 0, "read": 1, "modify": 2}
OURS = ("ours-asgi", "ours-wsgi")
LIMIT = "handwritten"
EARLIER = "†"
BUSY = "‡"
# CPUs' worth of other work on the machine during a case above which its figures are flagged.
BUSY_CPUS = 0.1


def num(value: float | None, digits: int = 2) -> str:
    """1 -> "1", 1.5 -> "1.5", 0.013 -> "0.01": per-request counts without noise."""
    if value is None:
        return ""
    if abs(value - round(value)) < 0.005:
        return str(round(value))
    text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _cell(text: str) -> str:
    """Free text (an error message) made safe inside a table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _busy(case: dict[str, Any]) -> str:
    return BUSY if case.get("other_cpus", 0.0) > BUSY_CPUS else ""


def busy_note(cases: list[dict[str, Any]]) -> list[str]:
    """A line under a table whose figures were taken while other work ran."""
    loads = [case["other_cpus"] for case in cases if _busy(case)]
    if not loads:
        return []
    return [
        "",
        f"{BUSY} Other work kept the machine busy during this case (up to "
        f"{max(loads):.2f} CPUs on average over a run): these figures may be low.",
    ]


def _rps(value: float | None) -> str:
    return "" if value is None else f"{value:,.0f}"


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def case_of(results: dict[str, Any], name: str, kind: str) -> dict[str, Any] | None:
    """The measured load case, or None. The framework-alone app has one handler for every
    route, so its untouched figures stand for every request type."""
    entry = results["apps"].get(name)
    if entry is None or entry.get("status"):
        return None
    if not entry.get("sessions", True):
        kind = "untouched"
    case = entry.get("cases", {}).get(kind)
    if not case or case.get("error") or not case.get("rps"):
        return None
    return case


def probe_of(results: dict[str, Any], name: str, kind: str) -> dict[str, Any] | None:
    entry = results["apps"].get(name)
    if entry is None or entry.get("status"):
        return None
    probe = entry.get("probes", {}).get(kind)
    return probe if probe and not probe.get("error") else None


def rps_of(results: dict[str, Any], name: str, kind: str) -> float | None:
    case = case_of(results, name, kind)
    return None if case is None else float(case["rps"])


def ratio(results: dict[str, Any], name: str, other: str, kind: str) -> float | None:
    mine, theirs = rps_of(results, name, kind), rps_of(results, other, kind)
    return None if mine is None or not theirs else mine / theirs


def _earlier(results: dict[str, Any], *records: dict[str, Any] | None) -> str:
    latest = results["latest"]
    return EARLIER if any(r and r.get("run", latest) != latest for r in records) else ""


def _mix(probe: dict[str, Any]) -> str:
    def words(mix: dict[str, float]) -> str:
        return ", ".join(
            name.upper() + ("" if abs(count - 1) < 0.005 else f" x{num(count)}")
            for name, count in mix.items()
        )

    text = words(probe["sent_mix"]) or "none"
    if probe["script_mix"]:
        text += f" [{words(probe['script_mix'])}]"
    return text


def case_table(results: dict[str, Any], order: list[str], kind: str) -> list[str]:
    lines = [
        "| app | req/s | p50 ms | p99 ms | vs handwritten | round trips | commands "
        "| in scripts | app CPU µs | Redis CPU µs | bytes/session |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name in order:
        entry = results["apps"].get(name)
        if entry is None:
            continue
        if entry.get("status"):
            lines.append(f"| {name} | {_cell(entry['status'])} |" + " |" * 9)
            continue
        sessions = entry.get("sessions", True)
        raw = entry.get("cases", {}).get(kind if sessions else "untouched")
        if raw is None:
            continue
        if raw.get("error"):
            lines.append(
                f"| {name}{_earlier(results, raw)} | failed: {_cell(raw['error'])} |" + " |" * 9
            )
            continue
        probe = probe_of(results, name, kind) if sessions else None
        memory = entry.get("memory") if sessions else None
        mark = _earlier(results, raw, probe, memory)
        label = name + mark + ("" if sessions else " (no session)")
        rps = _rps(raw["rps"]) + _busy(raw)
        bad = raw.get("errors", 0) + raw.get("bad_status", 0)
        if bad:
            rps += f" ({bad} errors)"
        bytes_cell = ""
        if memory:
            bytes_cell = f"{memory['bytes']:.0f}"
            if memory["keys"] != 1:
                bytes_cell += f" ({num(memory['keys'])} keys)"
        untouched_probe = probe_of(results, name, "untouched")
        if not sessions and untouched_probe:
            probe = untouched_probe
        lines.append(
            " | ".join(
                [
                    f"| {label}",
                    rps,
                    _ms(raw["p50_ms"]),
                    _ms(raw["p99_ms"]),
                    _ratio(ratio(results, name, LIMIT, kind)),
                    num(probe["round_trips"]) if probe else "",
                    num(probe["commands"]) if probe else "",
                    num(probe["in_scripts"]) if probe else "",
                    num(raw.get("cpu_us"), 0),
                    num(raw.get("redis_cpu_us"), 0),
                    bytes_cell,
                ]
            )
            + " |"
        )
    return lines


def mix_table(results: dict[str, Any], order: list[str]) -> list[str]:
    lines = ["| app | " + " | ".join(kind for kind in CASES) + " |", "|---|" + "---|" * len(CASES)]
    for name in order:
        entry = results["apps"].get(name)
        if entry is None or entry.get("status") or not entry.get("sessions", True):
            continue
        cells = []
        for kind in CASES:
            probe = probe_of(results, name, kind)
            cells.append(_mix(probe) if probe else "")
        if any(cells):
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def loss_table(results: dict[str, Any], order: list[str]) -> list[str]:
    lines = [
        "| app | app workers | `/incr`: answered 2xx | final counter - 1 | lost "
        "| `/atomic`: lost |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for name in order:
        entry = results["apps"].get(name)
        loss = entry.get("loss") if entry else None
        if not loss:
            continue
        mark = _earlier(results, loss)
        if loss.get("error"):
            lines.append(
                f"| {name}{mark} | {loss.get('workers', '')} "
                f"| failed: {_cell(loss['error'])} | | | |"
            )
            continue
        incr = loss.get("incr", {})
        atomic = loss.get("atomic")
        atomic_cell = (
            ""
            if atomic is None
            else (
                f"failed: {_cell(atomic['error'])}" if atomic.get("error") else str(atomic["lost"])
            )
        )
        if incr.get("error"):
            lines.append(
                f"| {name}{mark} | {loss['workers']} "
                f"| failed: {_cell(incr['error'])} | | | {atomic_cell} |"
            )
            continue
        lines.append(
            f"| {name}{mark} | {loss['workers']} | {incr['ok']} | {incr['final'] - 1} "
            f"| {incr['lost']} | {atomic_cell} |"
        )
    return lines


def scale_table(results: dict[str, Any]) -> list[str]:
    scale = results.get("scale")
    if not scale or not scale.get("rows"):
        return []
    rows = scale["rows"]
    base = {kind: (rows.get("1", {}).get(kind) or {}).get("rps") for kind in ("read", "modify")}
    lines = [
        "| app workers | read req/s | read p99 ms | read vs 1 worker | modify req/s "
        "| modify p99 ms | modify vs 1 worker |",
        "|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for workers in sorted(rows, key=int):
        cells = [workers + _earlier(results, scale)]
        for kind in ("read", "modify"):
            case = rows[workers].get(kind)
            if not case or case.get("error"):
                cells += [f"failed: {_cell(case['error'])}" if case else "", "", ""]
                continue
            cells += [
                _rps(case["rps"]) + _busy(case),
                _ms(case["p99_ms"]),
                _ratio(case["rps"] / base[kind] if base[kind] else None),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("**met**" if ok else "**missed**")


def targets(results: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    """(target, met / missed / None when not measured, the numbers) per target."""
    found: list[tuple[str, bool | None, str]] = []

    for name in OURS:
        figures, oks = [], []
        for kind, goal in ROUND_TRIP_TARGETS.items():
            probe = probe_of(results, name, kind)
            if probe is None:
                continue
            figures.append(f"{kind} {num(probe['round_trips'])}")
            oks.append(probe["round_trips"] <= goal + 0.02)
        met = None if len(oks) < len(ROUND_TRIP_TARGETS) else all(oks)
        found.append(
            (
                f"{name}: 0 / 1 / 2 round trips for untouched / read / modify",
                met,
                ", ".join(figures) or "no probe",
            )
        )

    def compare(title: str, name: str, other: str, goals: dict[str, float]) -> None:
        figures, oks = [], []
        for kind, goal in goals.items():
            value = ratio(results, name, other, kind)
            if value is None:
                figures.append(f"{kind}: not measured")
                continue
            figures.append(
                f"{kind} {value:.2f}x ({_rps(rps_of(results, name, kind))} vs "
                f"{_rps(rps_of(results, other, kind))} req/s; goal {goal:g}x)"
            )
            oks.append(value >= goal)
        met = None if len(oks) < len(goals) else all(oks)
        # The framework alone bounds any session library on it: how far the goal is reachable.
        group = results["apps"].get(name, {}).get("group")
        for bare, entry in results["apps"].items():
            ceiling = rps_of(results, bare, "untouched")
            if entry.get("sessions", True) or entry.get("group") != group or not ceiling:
                continue
            bounds = [
                f"{ceiling / theirs:.2f}x {other}'s {kind}"
                for kind in goals
                if (theirs := rps_of(results, other, kind))
            ]
            if bounds:
                figures.append(
                    f"ceiling: {bare} (no session at all) {_rps(ceiling)} req/s = "
                    + ", ".join(bounds)
                )
        found.append((title, met, "; ".join(figures)))

    compare(
        "ours-asgi read and modify ≥ 100% of handwritten",
        "ours-asgi",
        LIMIT,
        {"read": 1.0, "modify": 1.0},
    )
    compare(
        "ours-asgi ≥ 2x starsessions on read, ≥ 1.3x on modify",
        "ours-asgi",
        "starsessions",
        {"read": 2.0, "modify": 1.3},
    )
    compare(
        "ours-wsgi ≥ 5x flask-session (read and modify)",
        "ours-wsgi",
        "flask-session",
        {"read": 5.0, "modify": 5.0},
    )

    ours_lost, peers_lost = [], []
    for name, entry in results["apps"].items():
        loss = entry.get("loss") or {}
        if loss.get("error"):
            continue
        atomic, incr = loss.get("atomic"), loss.get("incr")
        if name in OURS and atomic and not atomic.get("error"):
            ours_lost.append((name, atomic["lost"]))
        if name not in OURS and incr and not incr.get("error"):
            peers_lost.append((name, incr["lost"]))
    numbers = ", ".join(f"{name} /atomic lost {lost}" for name, lost in ours_lost)
    if peers_lost:
        numbers += "; peers with /incr: " + ", ".join(f"{n} {lost}" for n, lost in peers_lost)
    found.append(
        (
            "0 lost increments with the atomic helper (32 connections, one session)",
            all(lost == 0 for _, lost in ours_lost) if ours_lost else None,
            numbers or "no loss test",
        )
    )

    sizes = {
        name: entry["memory"]["bytes"]
        for name, entry in results["apps"].items()
        if not entry.get("status") and entry.get("memory")
    }
    ours_sizes = [size for name, size in sizes.items() if name in OURS]
    # The hand-written limit is listed but not a rival: no session library is that bare.
    peers = {name: size for name, size in sizes.items() if name not in (*OURS, LIMIT)}
    if ours_sizes and peers:
        smallest = min(ours_sizes)
        met: bool | None = smallest <= min(peers.values())
        tied = sorted(name for name, size in peers.items() if size == smallest)
        numbers = f"ours {smallest:.0f} B" + (f" (tied with {', '.join(tied)})" if tied else "")
        numbers += "; " + ", ".join(
            f"{n} {s:.0f} B"
            for n, s in sorted(
                {k: v for k, v in sizes.items() if k not in OURS}.items(), key=lambda i: i[1]
            )
        )
    else:
        met, numbers = None, "not enough apps measured"
    found.append(("the smallest per-session memory of the session libraries", met, numbers))
    return found


def _meta_lines(meta: dict[str, Any]) -> list[str]:
    machine, versions, settings = meta["machine"], meta["versions"], meta["settings"]
    return [
        f"- Date: {meta['date']}",
        f"- Command: `{meta['command']}`",
        f"- Machine: {machine['cpu']} x {machine['cpus']} CPUs, {machine['os']} "
        f"(Linux {machine['kernel']})",
        "- Versions: " + ", ".join(f"{name} {version}" for name, version in versions.items()),
        f"- Load: {settings['tool']}, {settings['connections']} connections, "
        f"{num(settings['seconds'])} s per run after a {num(settings['warmup'])} s warm-up, "
        f"median of {settings['repeat']} runs per case; {settings['pinning']}",
    ]


def render(results: dict[str, Any], order: list[str], chart: str | None) -> str:
    latest = results["runs"][results["latest"]]
    out = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python bench/run.py`, see its `--help` for running parts); "
        "the next run rewrites this page, so edit `bench/runner/report.py` instead.",
        "",
        *_meta_lines(latest),
        "",
    ]
    earlier = sorted({run for run in results["runs"] if run != results["latest"]})
    if earlier:
        out += [f"Rows marked {EARLIER} hold figures from an earlier run:", ""]
        for run in earlier:
            meta = results["runs"][run]
            out.append(f"- {meta['date']}: `{meta['command']}`")
        out.append("")
    if chart:
        out += [f"![Requests per second, read and modify, per app]({chart})", ""]
    out += [
        "## How it is measured",
        "",
        "One Redis-compatible server (the binary the package finds, no persistence) on "
        "127.0.0.1 serves every app; the database is flushed before each app. Each app runs "
        "one worker process unless said otherwise.",
        "",
        "- **req/s, p50, p99**: the load generator keeps every connection busy for the run "
        "(keep-alive where the server offers it). Read, modify and untouched requests carry "
        "the cookies of sessions created beforehand by a first visit (one per connection, "
        "sent round-robin); a first visit carries none. Median of the runs, each figure "
        "separately.",
        "- **vs handwritten**: req/s divided by the handwritten app's for the same request "
        "type in the same run: Starlette with redis.asyncio, one `GET` to read, `GET` + `SET` "
        "to modify, the least a server-side session can cost.",
        "- **round trips, commands, in scripts** (per request): a separate sequential run of "
        "100 requests on one connection against the quiet app, after a warm-up. Round trips "
        "are the server's read events (`total_reads_processed`: a pipeline or a script call "
        "arrives in one); commands are those the app sent (a script call counts once, from "
        "`INFO commandstats`), *in scripts* the commands scripts ran (MONITOR lines of "
        "client `lua`).",
        "- **app CPU µs**: user + system time of the app's whole process group "
        "(`/proc/<pid>/stat`) over the run, per request; **Redis CPU µs** the same for the "
        "server process.",
        "- **bytes/session**: `MEMORY USAGE` of the keys one first visit created (found by "
        "diffing `SCAN` before and after; median of 20 visits), the session holding `n = 1`; "
        "MEMORY USAGE moves in the allocator's size classes (16 or 32 bytes apart at these "
        "sizes), so equal figures can hide small differences.",
        "",
    ]
    out += ["## Targets", "", "| target | result | numbers |", "|---|---|---|"]
    for title, met, numbers in targets(results):
        out.append(f"| {title} | {_verdict(met)} | {numbers} |")
    out.append("")
    for kind in CASES:
        table = case_table(results, order, kind)
        if len(table) > 2:
            measured = [case for name in order if (case := case_of(results, name, kind))]
            out += [f"## {TITLES[kind]}", "", *table, *busy_note(measured), ""]
    mixes = mix_table(results, order)
    if len(mixes) > 2:
        out += [
            "## Redis commands per request",
            "",
            "What each app sent per request in the sequential run (xn: n per request on "
            "average); in brackets, what the scripts ran.",
            "",
            *mixes,
            "",
        ]
    losses = loss_table(results, order)
    if len(losses) > 2:
        out += [
            "## Lost increments",
            "",
            "One session, 2000 requests over 32 concurrent connections, the app with several "
            "workers (so that WSGI servers run requests concurrently too). Lost = requests "
            "answered 2xx - (final counter - 1). `/incr` is the read-modify-write every peer "
            "offers; `/atomic` our atomic helper (`session.incr`).",
            "",
            *losses,
            "",
        ]
    scale = scale_table(results)
    if scale:
        out += [
            "## Worker scaling",
            "",
            f"{results['scale']['app']} with 1, 2 and 4 uvicorn worker processes sharing one "
            "Redis. The workers may use every CPU here (no pinning), so they share the machine "
            f"with the load generator and Redis: on {latest['machine']['cpus']} CPUs this "
            "shows how far the workers scale before the machine is full, not a per-core figure.",
            "",
            *scale,
            *busy_note(
                [
                    case
                    for row in results["scale"]["rows"].values()
                    for case in row.values()
                    if case and not case.get("error")
                ]
            ),
            "",
        ]
    store = results.get("store")
    if store and store.get("rows"):
        out += [
            f"## {store['count']:,} sessions",
            "",
            "`bench/store_scale.py` on a private server: sessions seeded as the store writes "
            "them, then the store API and the CLI over all of them." + _earlier(results, store),
            "",
            "| what | figure |",
            "|---|---|",
            *(f"| {what} | {figure} |" for what, figure in store["rows"]),
            "",
        ]
    return "\n".join(out).rstrip() + "\n"


def chart(results: dict[str, Any], order: list[str], path: Path) -> bool:
    """Grouped bars of req/s for read and modify per app, round trips written on each bar.

    False when matplotlib is missing or there is nothing to draw.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = [
        name
        for name in order
        if results["apps"].get(name, {}).get("sessions", True)
        and (rps_of(results, name, "read") or rps_of(results, name, "modify"))
    ]
    if not names:
        return False
    width = 0.38
    fig, ax = plt.subplots(figsize=(max(7.0, 1.25 * len(names) + 2), 4.8), dpi=120)
    for offset, kind, color in ((-width / 2, "read", "#4c72b0"), (width / 2, "modify", "#dd8452")):
        values = [rps_of(results, name, kind) or 0.0 for name in names]
        xs = [index + offset for index in range(len(names))]
        bars = ax.bar(xs, values, width, label=f"{kind} ({PATHS[kind]})", color=color)
        for bar, name in zip(bars, names):
            probe = probe_of(results, name, kind)
            if probe is not None:
                ax.annotate(
                    f"{num(probe['round_trips'])} RT",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    xytext=(0, 2),
                    textcoords="offset points",
                )
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("requests per second (median)")
    title = "Session read and modify, one app worker; RT = Redis round trips per request"
    # The framework alone, 2 to 4 times higher, would flatten the bars: named in the title.
    for name in order:
        ceiling = rps_of(results, name, "untouched")
        if not results["apps"].get(name, {}).get("sessions", True) and ceiling:
            title += f"\n{name} (no session at all): {ceiling:,.0f} req/s"
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
