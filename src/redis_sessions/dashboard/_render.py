"""HTML and SVG for the dashboard, built by small functions (no template engine).

Every value that did not come from this module goes through `esc` (text and attributes) or
`link` (URLs: percent-encoded, then escaped). The pages carry no script and load nothing:
the CSS is inline and the charts are inline SVG.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

from .._report import (
    UNKNOWN,
    SessionStats,
    human_age,
    human_bytes,
    human_duration,
    human_ttl,
    iso_time,
)
from ..store._listing import SessionInfo

__all__ = [
    "HOST_REFUSED",
    "PROXY_REFUSED",
    "REMOTE_REFUSED",
    "TOKEN_REQUIRED",
    "bar_chart",
    "detail_body",
    "esc",
    "link",
    "list_body",
    "message_page",
    "page",
    "stats_body",
    "url",
]

REMOTE_REFUSED = (
    "No access token is configured, so the dashboard only answers requests from this machine "
    "(a loopback address). Configure a token to use it from elsewhere."
)
HOST_REFUSED = (
    "No access token is configured, so the dashboard only answers when addressed as "
    "localhost, 127.0.0.1 or [::1] (other host names could be a DNS-rebinding attack). "
    "Configure a token to use it under another name."
)
PROXY_REFUSED = (
    "No access token is configured, and this request came through a proxy (it carries a "
    "Forwarded, X-Forwarded-*, X-Real-IP or Via header): behind a proxy every client looks "
    "local. Configure a token to use the dashboard through a proxy."
)
TOKEN_REQUIRED = (
    "This dashboard needs its access token: send <code>Authorization: Bearer &lt;token&gt;</code>,"
    " or open it once with <code>?token=&lt;token&gt;</code> in the address (a cookie then keeps "
    "you signed in for a few hours and the token is removed from the address)."
)

_CSS = """
:root{--fg:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f4f5f7;--accent:#2563eb;--danger:#dc2626}
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,
sans-serif;color:var(--fg);background:var(--bg)}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
header{background:#111827;color:#f9fafb;height:52px;padding:0 28px;display:flex;
align-items:center;gap:28px}
header .brand{font-weight:650;font-size:16px;color:#fff;letter-spacing:.01em}
header .brand span{color:#f87171}
header nav{display:flex;gap:4px}
header nav a{color:#d1d5db;padding:6px 12px;border-radius:6px}
header nav a:hover{background:#1f2937;text-decoration:none}
header nav a.on{background:#374151;color:#fff}
header .meta{margin-left:auto;color:#9ca3af;font-size:12px}
header .meta a{color:#93c5fd}
main{max-width:1240px;margin:0 auto;padding:22px 28px 48px}
h1{font-size:20px;margin:0 0 16px;font-weight:650}
h2{font-size:15px;margin:0 0 12px;font-weight:650}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px;
margin-bottom:18px}
.card{background:#fff;border:1px solid var(--line);border-radius:10px;padding:14px 16px}
.card .k{color:var(--muted);font-size:11px;text-transform:uppercase;letter-spacing:.06em}
.card .v{font-size:24px;font-weight:650;margin-top:2px;font-variant-numeric:tabular-nums}
.card .s{color:var(--muted);font-size:12px}
.panel{background:#fff;border:1px solid var(--line);border-radius:10px;padding:16px 18px;
margin-bottom:18px}
.panel.flush{padding:0;overflow:auto}
form.search{display:flex;gap:12px;flex-wrap:wrap;align-items:flex-end}
form.search label{display:flex;flex-direction:column;gap:4px;font-size:12px;color:var(--muted)}
form.search label.check{flex-direction:row;align-items:center;gap:6px;padding-bottom:8px}
input[type=text],input[type=number]{font:inherit;padding:7px 10px;border:1px solid #d1d5db;
border-radius:6px;min-width:220px;background:#fff}
input[type=number]{min-width:90px;width:90px}
button,.button{font:inherit;font-weight:550;padding:7px 16px;border-radius:6px;
border:1px solid var(--accent);background:var(--accent);color:#fff;cursor:pointer}
.button.ghost{background:#fff;color:var(--fg);border-color:#d1d5db}
button.danger{background:var(--danger);border-color:var(--danger)}
table{width:100%;border-collapse:collapse}
th,td{padding:9px 14px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
th{font-size:11px;color:var(--muted);text-transform:uppercase;letter-spacing:.06em;
background:#f9fafb;font-weight:600}
tbody tr:last-child td{border-bottom:0}
tbody tr:hover td{background:#f9fafb}
.num{text-align:right;font-variant-numeric:tabular-nums}
.mono,code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
.anon{color:#9ca3af;font-style:italic}
.user{font-weight:550}
.flash{padding:10px 14px;border-radius:8px;background:#ecfdf5;border:1px solid #a7f3d0;
color:#065f46;margin-bottom:18px}
.flash.warn{background:#fffbeb;border-color:#fde68a;color:#92400e}
.note{color:var(--muted);font-size:13px;margin:10px 2px 0}
.bar{display:flex;justify-content:space-between;align-items:center;margin:0 0 12px;gap:12px}
.bar .note,.bar h1,.bar h2{margin:0}
pre{background:#0f172a;color:#e2e8f0;padding:16px;border-radius:8px;overflow:auto;margin:0;
white-space:pre-wrap;word-break:break-word}
dl{display:grid;grid-template-columns:150px 1fr;gap:8px 18px;margin:0}
dt{color:var(--muted)}dd{margin:0;word-break:break-all}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:18px}
.charts .panel{margin:0}
svg text{font:12px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;fill:#374151}
.empty{padding:28px;text-align:center;color:var(--muted)}
""".replace("\n", "")

_CHART_COLORS = ("#2563eb", "#0d9488", "#7c3aed")


def esc(value: object) -> str:
    """HTML-escape any value (quotes too: safe in attributes)."""
    return html.escape(str(value), quote=True)


def url(root: str, path: str, query: Mapping[str, str] | None = None) -> str:
    """A URL under the mount point `root`, with `query` percent-encoded (empty values left
    out). Not escaped: for headers; use `link` in HTML."""
    kept = {k: v for k, v in (query or {}).items() if v != ""}
    return root + path + ("?" + urlencode(kept) if kept else "")


def link(root: str, path: str, query: Mapping[str, str] | None = None) -> str:
    """`url`, HTML-escaped for an attribute."""
    return esc(url(root, path, query))


def session_path(handle: str) -> str:
    """The detail page path of a handle (relative to the mount point)."""
    return "/s/" + quote(handle, safe="")


def fmt_count(n: int) -> str:
    """An integer with thousands separators."""
    return f"{n:,}"


def _user_cell(user: str | None) -> str:
    if user is None:
        return '<span class="anon">anonymous</span>'
    return f'<span class="user">{esc(user)}</span>'


def page(
    title: str,
    root: str,
    body: str,
    *,
    active: str = "",
    heading: str = "",
    refresh: int = 0,
    refresh_url: str = "",
    meta: str = "",
) -> str:
    """A whole HTML document: header with navigation (and `meta` text on its right), then
    `body` (already HTML).

    `refresh` > 0 reloads `refresh_url` (escaped here) every `refresh` seconds.
    """
    reload = ""
    if refresh > 0:
        reload = f'<meta http-equiv="refresh" content="{refresh}; url={esc(refresh_url)}">'
    nav = "".join(
        f'<a href="{link(root, path)}"{" class=on" if name == active else ""}>{label}</a>'
        for name, path, label in (("list", "/", "Sessions"), ("stats", "/stats", "Statistics"))
    )
    head_title = f"{esc(heading)} · {esc(title)}" if heading else esc(title)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"{reload}<title>{head_title}</title><style>{_CSS}</style></head><body>"
        f'<header><a class=brand href="{link(root, "/")}">{esc(title)}</a>'
        f'<nav>{nav}</nav><div class="meta">{esc(meta)}</div></header>'
        f"<main>{body}</main></body></html>"
    )


def message_page(
    title: str, root: str, heading: str, text_html: str, *, refresh: int = 0, refresh_url: str = ""
) -> str:
    """A page with one message; `text_html` is trusted HTML written in this package."""
    body = f'<h1>{esc(heading)}</h1><div class="panel">{text_html}</div>'
    return page(title, root, body, heading=heading, refresh=refresh, refresh_url=refresh_url)


def bar_chart(title: str, rows: Sequence[tuple[str, int]], color: int = 0) -> str:
    """A horizontal bar chart as inline SVG: one bar per (label, count) row."""
    label_w, bar_w, value_w, row_h, top = 92, 330, 64, 26, 6
    width = label_w + bar_w + value_w
    height = top * 2 + row_h * len(rows)
    peak = max((count for _, count in rows), default=0) or 1
    fill = _CHART_COLORS[color % len(_CHART_COLORS)]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{esc(title)}</title>'
    ]
    for index, (label, count) in enumerate(rows):
        y = top + index * row_h
        length = round(bar_w * count / peak) if count else 0
        if count and length < 2:
            length = 2  # a non-zero bucket stays visible
        parts.append(
            f'<text x="{label_w - 10}" y="{y + 17}" text-anchor="end">{esc(label)}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{bar_w}" height="18" rx="3" '
            'fill="#f3f4f6"/>'
            f'<rect x="{label_w}" y="{y + 4}" width="{length}" height="18" rx="3" '
            f'fill="{fill}"><title>{esc(label)}: {count}</title></rect>'
            f'<text x="{label_w + bar_w + 8}" y="{y + 17}">{fmt_count(count)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def stats_cards(stats: SessionStats, root: str) -> str:
    """The stats panel: count, memory, users, anonymous sessions."""
    partial = "" if stats.complete else " (partial)"
    plus = "" if stats.complete else "+"
    average = stats.average_size
    per_session = UNKNOWN if average is None else human_bytes(round(average))
    distinct = stats.users.distinct
    users = f"{fmt_count(stats.users.capacity)}+" if distinct is None else fmt_count(distinct)
    cards = (
        (
            "Sessions",
            f"{fmt_count(stats.count)}{plus}",
            f"scanned in {stats.elapsed_s * 1000:.0f} ms{partial}",
        ),
        ("Memory", human_bytes(stats.memory), f"{per_session} per session"),
        ("Signed-in users", users, f"{fmt_count(stats.with_user)} sessions"),
        ("Anonymous", fmt_count(stats.count - stats.with_user), "sessions without a user"),
        ("Expiring soon", fmt_count(stats.ttl.below(3600)), "within the hour"),
    )
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><div class="k">{esc(k)}</div><div class="v">{esc(v)}</div>'
            f'<div class="s">{esc(s)}</div></div>'
            for k, v, s in cards
        )
        + "</div>"
    )


def _search_form(root: str, match: str, user: str, exact: bool, limit: int, paused: bool) -> str:
    hidden = '<input type="hidden" name="refresh" value="0">' if paused else ""
    return (
        f'<form class="search" method="get" action="{link(root, "/")}">'
        '<label>Key or handle prefix<input type="text" name="match" '
        f'value="{esc(match)}" placeholder="e.g. Xy3k" autocomplete="off"></label>'
        '<label>User<input type="text" name="user" '
        f'value="{esc(user)}" placeholder="name, id or e-mail" autocomplete="off"></label>'
        '<label class="check"><input type="checkbox" name="exact" value="1"'
        f"{' checked' if exact else ''}> exact user</label>"
        f'<label>Rows<input type="number" name="limit" min="1" max="1000" value="{limit}">'
        f'</label>{hidden}<button type="submit">Search</button>'
        f'<a class="button ghost" href="{link(root, "/")}">Reset</a></form>'
    )


def _sessions_table(rows: Iterable[SessionInfo], root: str, now_ms: int) -> str:
    head = (
        "<thead><tr><th>Session</th><th>User</th><th class=num>Age</th><th class=num>Idle</th>"
        "<th class=num>TTL</th><th class=num>Size</th><th class=num>Fields</th></tr></thead>"
    )
    body = []
    for info in rows:
        short = info.handle[:12] + ("…" if len(info.handle) > 12 else "")
        body.append(
            f'<tr><td class="mono"><a href="{link(root, session_path(info.handle))}" '
            f'title="{esc(info.key)}">{esc(short)}</a></td>'
            f"<td>{_user_cell(info.user)}</td>"
            f"<td class=num>{human_age(info, now_ms)}</td>"
            f"<td class=num>{human_duration(info.idle_s)}</td>"
            f"<td class=num>{human_ttl(info.ttl_ms)}</td>"
            f"<td class=num>{human_bytes(info.size)}</td><td class=num>{info.fields}</td></tr>"
        )
    return f"<table>{head}<tbody>{''.join(body)}</tbody></table>"


def list_body(
    *,
    root: str,
    rows: list[SessionInfo],
    now_ms: int,
    stats: SessionStats,
    match: str,
    user: str,
    exact: bool,
    limit: int,
    more: bool,
    partial: bool,
    scanned: int,
    flash: str,
    refresh: int,
    paused: bool,
    query: Mapping[str, str],
) -> str:
    """The sessions list: flash, stats panel, search form, table and notes."""
    parts = []
    if flash:
        parts.append(f'<div class="flash" role="status">{esc(flash)}</div>')
    parts.append(stats_cards(stats, root))
    parts.append(
        '<div class="panel">' + _search_form(root, match, user, exact, limit, paused) + "</div>"
    )
    if refresh > 0:
        if paused:
            resume = {k: v for k, v in query.items() if k != "refresh"}
            toggle = (
                f'Auto-refresh paused · <a href="{link(root, "/", resume)}">'
                f"resume (every {refresh} s)</a>"
            )
        else:
            toggle = (
                f"Auto-refresh every {refresh} s · "
                f'<a href="{link(root, "/", {**query, "refresh": "0"})}">pause</a>'
            )
    else:
        toggle = "Auto-refresh off"
    shown = f"{len(rows)} session{'' if len(rows) == 1 else 's'}"
    filtered = " matching" if (match or user) else ""
    parts.append(f'<div class="bar"><h2>{shown}{filtered}</h2><p class="note">{toggle}</p></div>')
    if rows:
        parts.append(f'<div class="panel flush">{_sessions_table(rows, root, now_ms)}</div>')
    else:
        parts.append('<div class="panel empty">No sessions match.</div>')
    notes = []
    if more:
        bigger = {**query, "limit": str(min(1000, limit * 5))}
        notes.append(
            f"Showing the first {limit} found; there are more: narrow the search or "
            f'<a href="{link(root, "/", bigger)}">show up to {min(1000, limit * 5)}</a>.'
        )
    if partial:
        notes.append(
            f"The search stopped after scanning {fmt_count(scanned)} sessions "
            "(time budget): results are partial, narrow the search."
        )
    notes.append(
        "Newest first among the sessions found. Session ids are never stored: "
        "sessions are named by their handle (a SHA-256 of the id)."
    )
    parts.extend(f'<p class="note">{note}</p>' for note in notes)
    return "".join(parts)


def detail_body(
    *,
    root: str,
    info: SessionInfo,
    data: dict[str, Any] | None,
    now_ms: int,
    csrf: str,
    csrf_field: str,
) -> str:
    """A session's metadata, its data as pretty JSON, and the delete form."""
    created = UNKNOWN
    if info.created_ms is not None:
        created = f"{iso_time(info.created_ms)} ({human_age(info, now_ms)} ago)"
    user = _user_cell(info.user)
    if info.user is not None:
        others = link(root, "/", {"user": info.user, "exact": "1"})
        user += f' · <a href="{others}">all sessions of this user</a>'
    rows = (
        ("Key", f'<span class="mono">{esc(info.key)}</span>'),
        ("Handle", f'<span class="mono">{esc(info.handle)}</span>'),
        ("User", user),
        ("Created", esc(created)),
        ("Idle", human_duration(info.idle_s)),
        ("Expires in", human_ttl(info.ttl_ms)),
        ("Memory", human_bytes(info.size)),
        ("Fields", str(info.fields)),
    )
    meta = "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"
    if data is None:
        payload = '<p class="note">The payload could not be decoded (foreign or corrupt).</p>'
    else:
        text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=repr)
        payload = f"<pre>{esc(text)}</pre>"
    delete = (
        f'<form method="post" action="{link(root, session_path(info.handle) + "/delete")}">'
        f'<input type="hidden" name="{esc(csrf_field)}" value="{esc(csrf)}">'
        '<button class="danger" type="submit">Delete session</button></form>'
    )
    return (
        f'<div class="bar"><h1>Session <span class="mono">{esc(info.handle[:12])}…</span></h1>'
        f"{delete}</div>"
        f'<div class="panel">{meta}</div>'
        f'<div class="panel"><h2>Data</h2>{payload}</div>'
        f'<p class="note"><a href="{link(root, "/")}">← All sessions</a> · Deleting logs the '
        "user out: their next request starts a new session.</p>"
    )


def stats_body(*, root: str, stats: SessionStats, top: int, refresh: int, paused: bool) -> str:
    """The stats page: cards, TTL / age / idle histograms, top users."""
    charts = "".join(
        f'<div class="panel"><h2>{esc(title)}</h2>'
        f"{bar_chart(title, histogram.buckets(), color=index)}</div>"
        for index, (histogram, title) in enumerate(
            (
                (stats.ttl, "Time to live"),
                (stats.age, "Age (since creation)"),
                (stats.idle, "Idle (since last access)"),
            )
        )
    )
    users = stats.users.top(top)
    if users:
        table_rows = "".join(
            f'<tr><td><a href="{link(root, "/", {"user": name, "exact": "1"})}">'
            f"{esc(name)}</a></td><td class=num>{fmt_count(count)}</td></tr>"
            for name, count in users
        )
        top_users = (
            f"<table><thead><tr><th>User</th><th class=num>Sessions</th></tr>"
            f"</thead><tbody>{table_rows}</tbody></table>"
        )
    else:
        top_users = '<p class="empty">No signed-in users.</p>'
    notes = []
    if not stats.complete:
        notes.append(
            f"The scan stopped after {fmt_count(stats.count)} sessions (time budget): "
            "figures cover those sessions only."
        )
    if not stats.users.exact:
        notes.append("Many distinct users: the user counts are approximate.")
    if refresh > 0 and not paused:
        notes.append(
            f"Refreshes every {refresh} s · "
            f'<a href="{link(root, "/stats", {"refresh": "0"})}">pause</a>'
        )
    return (
        "<h1>Statistics</h1>"
        + stats_cards(stats, root)
        + f'<div class="charts">{charts}<div class="panel"><h2>Top users</h2>{top_users}'
        "</div></div>" + "".join(f'<p class="note">{note}</p>' for note in notes)
    )
