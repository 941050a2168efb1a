"""The data commands (ls, show, rm, stats, purge) in-process against a real server, and the
error paths: Redis down, no URL, a refused command."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from redis_sessions import RedisStore
from redis_sessions.cli import NO_URL, main
from redis_sessions.server import free_port
from tests.cli.clikit import Seeded, invoke, seed_many
from tests.support.servers import MakeServer

# -- ls ---------------------------------------------------------------------------------------


def ls_json(url: str, *args: str) -> list[dict[str, Any]]:
    rows = json.loads(invoke(url, "ls", "--json", *args).stdout)
    assert isinstance(rows, list)
    return rows


def test_ls_json_lists_every_session_with_its_metadata(seeded: Seeded) -> None:
    rows = ls_json(seeded.url, "--limit", "0")
    by_handle = {row["handle"]: row for row in rows}
    assert set(by_handle) == set(seeded.data)  # not other:{...}, not the plain key
    assert len(rows) == len(by_handle)
    expected_users = {
        "alice-1": "alice",
        "alice-2": "alice",
        "alice-3": "alice",
        "bob-1": "bob",
        "bob-2": "bob",
        "carol-1": "carol",
        "anon-1": None,
    }
    assert {h: r["user"] for h, r in by_handle.items()} == expected_users
    row = by_handle["bob-1"]
    assert row["key"] == "sess:{bob-1}"
    assert 10 * 3600_000 - 60_000 < row["ttl_ms"] <= 10 * 3600_000
    assert row["size"] > 0
    assert row["fields"] == 3  # user, views, $c
    assert 0 <= row["age_s"] < 60
    assert 2 * 86400 - 60 < by_handle["bob-2"]["age_s"] < 2 * 86400 + 60


def test_ls_table_shows_keys_ages_ttls_sizes_users(seeded: Seeded) -> None:
    out = invoke(seeded.url, "ls").stdout
    lines = out.splitlines()
    assert lines[0].split() == ["key", "age", "idle", "TTL", "size", "user"]
    assert set(lines[1]) == {"─"}
    rows = {line.split()[0]: line.split() for line in lines[2:-1]}
    assert set(rows) == {f"sess:{{{h}}}" for h in seeded.data}
    bob = rows["sess:{bob-2}"]
    assert bob[1] == "2d"  # age
    assert bob[3] in ("1d23h", "2d")  # TTL
    assert bob[-1] == "bob"
    assert rows["sess:{anon-1}"][-1] == "-"
    assert re.fullmatch(r"\d+", bob[4]) and bob[5] == "B"  # "112 B"
    assert lines[-1] == "7 sessions"


def test_ls_table_streams_in_chunks(clean_redis: Any, redis_url: str) -> None:
    seed_many(clean_redis, 250, users=7)
    lines = invoke(redis_url, "ls", "--limit", "0").stdout.splitlines()
    assert lines[0].startswith("key ") and lines[-1] == "250 sessions"
    rows = lines[2:-1]
    assert len(rows) == 250 and len({row.split()[0] for row in rows}) == 250
    # One header, and every chunk aligned like the first.
    assert sum(line.startswith("key ") for line in lines) == 1
    assert {len(row.split()[0]) for row in rows} == {len("sess:{}") + 43}
    assert len({row.index(row.split()[-1]) for row in rows}) == 1  # the user column


def test_ls_limit_stops_early(seeded: Seeded) -> None:
    assert len(ls_json(seeded.url, "--limit", "2")) == 2
    assert len(ls_json(seeded.url)) == 7  # the default limit is 50
    out = invoke(seeded.url, "ls", "--limit", "3").stdout.splitlines()
    assert len(out) == 2 + 3 + 1
    assert out[-1] == "3 sessions shown (--limit reached; --limit 0 lists all)"
    # Exactly the limit, nothing more: no "more" hint.
    assert invoke(seeded.url, "ls", "--limit", "7").stdout.splitlines()[-1] == "7 sessions"


def test_ls_match_by_handle_or_key_prefix(seeded: Seeded) -> None:
    assert {r["handle"] for r in ls_json(seeded.url, "--match", "alice")} == {
        "alice-1",
        "alice-2",
        "alice-3",
    }
    assert {r["handle"] for r in ls_json(seeded.url, "--match", "sess:{bo")} == {"bob-1", "bob-2"}
    assert ls_json(seeded.url, "--match", "zzz") == []
    assert invoke(seeded.url, "ls", "--match", "zzz").stdout == "no sessions\n"


def test_ls_user_filter(seeded: Seeded) -> None:
    for user in ("alice", "bob", "carol"):
        rows = ls_json(seeded.url, "--user", user, "--limit", "0")
        assert {r["handle"] for r in rows} == seeded.handles_of(user)
    assert len(ls_json(seeded.url, "--user", "alice", "--limit", "2")) == 2
    out = invoke(seeded.url, "ls", "--user", "alice", "--limit", "3").stdout
    assert out.splitlines()[-1].startswith("3 sessions shown")
    assert ls_json(seeded.url, "--user", "nobody") == []


def test_prefix_and_user_field_options(seeded: Seeded) -> None:
    rows = json.loads(invoke(seeded.url, "--prefix", "other:", "ls", "--json").stdout)
    assert [(r["key"], r["user"]) for r in rows] == [("other:{other-1}", "mallory")]
    seeded.store.set("dave-1", {"account": "dave", "user": "not-this"})
    rows = json.loads(
        invoke(seeded.url, "--user-field", "account", "ls", "--json", "--user", "dave").stdout
    )
    assert [r["handle"] for r in rows] == ["dave-1"]


def test_ls_does_not_let_session_data_reach_the_terminal_raw(seeded: Seeded) -> None:
    seeded.store.set("evil-1", {"user": "x\x1b[2Jy"})
    out = invoke(seeded.url, "ls", "--match", "evil").stdout
    assert "\x1b" not in out
    assert "x?[2Jy" in out


# -- show -------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["sess:{alice-1}", "{alice-1}", "alice-1"])
def test_show_metadata_and_pretty_data(seeded: Seeded, form: str) -> None:
    out = invoke(seeded.url, "show", form).stdout
    fields = dict(re.findall(r"^(\w+)\s+(.+?)\s*$", out, re.MULTILINE))
    assert fields["key"] == "sess:{alice-1}"
    assert fields["handle"] == "alice-1"
    assert fields["user"] == "alice"
    assert re.fullmatch(r"\d+s \([\d,]+ ms\)", fields["TTL"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(\d+s ago\)", fields["created"])
    assert re.fullmatch(r"\d+ B", fields["size"])
    assert fields["fields"].startswith("4 ")
    data = out[out.index("\n{\n") + 1 :]
    assert json.loads(data) == seeded.data["alice-1"]
    assert '"sku": "x-9"' in data and "\n    " in data  # indented, nested


def test_show_json_and_non_ascii(seeded: Seeded) -> None:
    document = json.loads(invoke(seeded.url, "show", "--json", "anon-1").stdout)
    assert document["data"] == {"views": 1, "note": "é ✓"}
    assert document["session"]["key"] == "sess:{anon-1}"
    assert document["session"]["user"] is None
    assert "é ✓" in invoke(seeded.url, "show", "anon-1").stdout


def test_show_no_expiry_and_unreadable_payload(seeded: Seeded) -> None:
    seeded.client.persist(seeded.key("bob-1"))
    assert "none (no expiry)" in invoke(seeded.url, "show", "bob-1").stdout
    seeded.client.hset(seeded.key("bob-1"), "views", b"{not json")
    out = invoke(seeded.url, "show", "bob-1").stdout
    assert "data: not readable" in out


def test_show_unknown_key(seeded: Seeded) -> None:
    result = invoke(seeded.url, "show", "sess:{nope}", expect=1)
    assert result.stderr == "Error: no session sess:{nope} (wrong key, expired or deleted)\n"
    assert result.stdout == ""
    result = invoke(seeded.url, "show", "other:{other-1}", expect=1)
    assert "is not a key under the prefix 'sess:' (pass --prefix)" in result.stderr
    assert "mallory" in invoke(seeded.url, "--prefix", "other:", "show", "other:{other-1}").stdout


# -- rm ---------------------------------------------------------------------------------------


def test_rm_deletes_and_counts(seeded: Seeded) -> None:
    result = invoke(seeded.url, "rm", "sess:{alice-1}", "bob-1", "{nope}", "bob-1")
    assert result.stdout == "deleted 2 of 3 sessions\n"
    assert seeded.store.get("alice-1") is None
    assert seeded.store.get("bob-1") is None
    assert seeded.store.get("bob-2") is not None
    result = invoke(seeded.url, "rm", "alice-1", expect=1)
    assert result.stdout == "deleted 0 of 1 session\n"
    assert result.stderr == "Error: none of the given sessions existed\n"
    assert invoke(seeded.url, "rm", expect=2).stderr.endswith("Missing argument 'KEYS...'.\n")


# -- stats ------------------------------------------------------------------------------------


def test_stats_json_figures(seeded: Seeded) -> None:
    stats = json.loads(invoke(seeded.url, "stats", "--json").stdout)
    assert stats["count"] == 7
    keys = [seeded.key(h) for h in seeded.data]
    memory = sum(seeded.client.memory_usage(k, samples=0) or 0 for k in keys)
    assert stats["memory_bytes"] == memory
    assert stats["memory_unknown"] == 0
    assert stats["average_size"] == round(memory / 7, 1)
    assert stats["with_user"] == 6
    assert stats["distinct_users"] == 3
    ttl = {b["bucket"]: b["count"] for b in stats["ttl"]}
    assert sum(ttl.values()) == 7
    assert ttl == {
        "< 1m": 1,
        "1m-10m": 1,
        "10m-1h": 1,
        "1h-6h": 1,
        "6h-1d": 2,
        "1d-7d": 1,
        ">= 7d": 0,
    }
    age = {b["bucket"]: b["count"] for b in stats["age"]}
    assert sum(age.values()) == 7
    assert age["< 1m"] == 6 and age["1d-7d"] == 1
    assert stats["top_users"] == [
        {"user": "alice", "sessions": 3},
        {"user": "bob", "sessions": 2},
        {"user": "carol", "sessions": 1},
    ]
    assert stats["top_users_exact"] is True
    assert stats["prefix"] == "sess:" and stats["url"] == seeded.url


def test_stats_text_report(seeded: Seeded) -> None:
    seeded.client.persist(seeded.key("anon-1"))
    out = invoke(seeded.url, "stats", "--top", "2").stdout
    assert re.search(r"^count\s+7\s*$", out, re.MULTILINE)
    assert re.search(r"^with a user\s+6\s+3 distinct users", out, re.MULTILINE)
    assert "TTL (time left)" in out and "Age (since creation)" in out
    assert re.search(r"^no expiry\s+1\s+14\.3%\s+█+\s*$", out, re.MULTILINE)
    assert re.search(r"^< 1m\s+6\s+85\.7%\s+█{32}\s*$", out, re.MULTILINE)  # the longest bar
    assert re.search(r"^alice\s+3\s*$", out, re.MULTILINE)
    assert re.search(r"^bob\s+2\s*$", out, re.MULTILINE)
    assert "carol" not in out  # --top 2


def test_stats_of_nothing(clean_redis: Any, redis_url: str) -> None:
    out = invoke(redis_url, "stats").stdout
    assert re.search(r"^count\s+0\s*$", out, re.MULTILINE)
    assert "TTL" not in out
    assert json.loads(invoke(redis_url, "stats", "--json").stdout)["average_size"] is None


def test_server_without_memory_usage(make_server: MakeServer) -> None:
    # MEMORY and OBJECT renamed away: sizes and idle times are unknown, nothing fails.
    server = make_server(
        appendonly=False,
        extra_args=["--rename-command", "MEMORY", "", "--rename-command", "OBJECT", ""],
    )
    store = RedisStore(url=server.url)
    store.set("h1", {"user": "zoe"})
    store.close()
    stats = json.loads(invoke(server.url, "stats", "--json").stdout)
    assert stats["count"] == 1 and stats["memory_unknown"] == 1 and stats["memory_bytes"] == 0
    assert "1 sessions without MEMORY USAGE" in invoke(server.url, "stats").stdout
    row = invoke(server.url, "ls").stdout.splitlines()[2].split()
    assert row[2] == "—" and row[4] == "—"  # idle, size


# -- purge ------------------------------------------------------------------------------------


def test_purge_yes_deletes_only_sessions_under_the_prefix(seeded: Seeded) -> None:
    result = invoke(seeded.url, "purge", "--yes")
    assert re.fullmatch(r"deleted 7 sessions in \d+\.\d\d s\n", result.stdout)
    assert "7 deleted" in result.stderr  # the final state of the progress bar
    assert seeded.client.keys("sess:*") == []
    assert seeded.client.get("unrelated") == b"keep me"
    assert seeded.client.exists("other:{other-1}") == 1
    assert invoke(seeded.url, "purge", "-y").stdout.startswith("deleted 0 sessions in ")


def test_purge_refuses_without_yes_and_without_a_terminal(seeded: Seeded) -> None:
    result = invoke(seeded.url, "purge", expect=1)
    assert result.stderr == (
        f"Error: refusing to delete every session under 'sess:' at {seeded.url} without "
        "confirmation: pass --yes (no terminal to ask on)\n"
    )
    assert len(seeded.client.keys("sess:*")) == 7


def test_purge_asks_on_a_terminal(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("redis_sessions.cli._stdin_is_tty", lambda: True)
    result = invoke(seeded.url, "purge", input="n\n", expect=1)
    assert f"Delete every session under 'sess:' at {seeded.url}? [y/N]" in result.stdout
    assert "Aborted!" in result.stderr
    assert len(seeded.client.keys("sess:*")) == 7
    result = invoke(seeded.url, "purge", input="y\n")
    assert "deleted 7 sessions" in result.stdout
    assert seeded.client.keys("sess:*") == []


# -- where the URL comes from, and failures ---------------------------------------------------


def test_url_from_env_then_from_the_demo_file(
    seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert len(json.loads(invoke(None, "ls", "--json", env={"REDIS_URL": seeded.url}).stdout)) == 7
    result = invoke(None, "ls", env={"REDIS_URL": None}, expect=1)
    assert result.stderr == f"Error: {NO_URL}\n"
    (tmp_path / ".redis-sessions-data").mkdir(mode=0o700)
    (tmp_path / ".redis-sessions-data" / "server.url").write_text(seeded.url + "\n")
    (tmp_path / ".redis-sessions-data" / "server.url").chmod(0o600)
    assert len(json.loads(invoke(None, "ls", "--json", env={"REDIS_URL": None}).stdout)) == 7
    # An explicit --url wins over both.
    down = f"redis://127.0.0.1:{free_port()}/0"
    invoke(down, "ls", env={"REDIS_URL": seeded.url}, expect=1)


@pytest.mark.parametrize(
    "plant",
    [
        "file-of-another-user",
        "file-readable-by-others",
        "file-writable-by-others",
        "dir-of-another-user",
        "dir-writable-by-others",
        "symlink",
    ],
)
def test_a_planted_url_file_is_refused(
    seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plant: str
) -> None:
    monkeypatch.chdir(tmp_path)
    directory = tmp_path / ".redis-sessions-data"
    directory.mkdir(mode=0o700)
    url_file = directory / "server.url"
    target = tmp_path / "elsewhere.url"
    (target if plant == "symlink" else url_file).write_text(seeded.url + "\n")
    (target if plant == "symlink" else url_file).chmod(0o600)
    if plant == "symlink":
        url_file.symlink_to(target)
    elif plant == "file-of-another-user":
        os.chown(url_file, 65534, 65534)  # nobody
    elif plant == "file-readable-by-others":
        url_file.chmod(0o644)
    elif plant == "file-writable-by-others":
        url_file.chmod(0o602)
    elif plant == "dir-of-another-user":
        os.chown(directory, 65534, 65534)
    else:
        directory.chmod(0o777)
    result = invoke(None, "ls", env={"REDIS_URL": None}, expect=1)
    where = directory if plant.startswith("dir") else url_file
    where = where.relative_to(tmp_path)
    assert result.stderr.startswith("Error: ") and str(where) in result.stderr, result.stderr
    assert "pass --url" in result.stderr
    assert result.stdout == ""


_SECRET_URLS = [
    "redis://:hunter2@127.0.0.1:{port}/0",
    "redis://app:hunter2@127.0.0.1:{port}/0",
    "redis://127.0.0.1:{port}/0?password=hunter2",
    "unix:///nonexistent/redis.sock?db=0&password=hunter2",
    "redis+sentinel://:hunter2@127.0.0.1:{port}/mymaster?sentinel_password=hunter3",
    "rediss://127.0.0.1:{port}/0?ssl_password=hunter4&socket_timeout=1",
]


@pytest.mark.parametrize("template", _SECRET_URLS)
def test_no_password_form_reaches_an_error_message(template: str) -> None:
    url = template.format(port=free_port())
    result = invoke(url, "ls", expect=1)
    assert result.stderr.startswith("Error: "), result.stderr
    assert "hunter" not in result.output, result.output
    assert "***" in result.output, result.output


def test_stats_json_and_the_purge_prompt_hide_a_query_password(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_server(appendonly=False, password="hunter2", unix_socket=True)
    url = server.unix_url  # unix:///...?db=0&password=hunter2, as LocalServer writes it
    shown = url.replace("password=hunter2", "password=***")
    assert json.loads(invoke(url, "stats", "--json").stdout)["url"] == shown
    assert f"at {shown}" in invoke(url, "stats").stdout.replace("\n", "")  # wrapped
    monkeypatch.setattr("redis_sessions.cli._stdin_is_tty", lambda: True)
    result = invoke(url, "purge", input="n\n", expect=1)
    assert f"Delete every session under 'sess:' at {shown}? [y/N]" in result.stdout
    assert "hunter2" not in result.output


_EVIL = "alice\x1b[2J\x1b]0;pwned\x07\x9b31m\u202e"


def test_show_and_stats_clean_what_reaches_the_terminal(seeded: Seeded) -> None:
    seeded.store.set("evil-1", {"user": _EVIL, "note\x1b[1m": "x\x9b2Jy"})
    for out in (invoke(seeded.url, "show", "evil-1").stdout, invoke(seeded.url, "stats").stdout):
        assert not any(c in out for c in "\x1b\x07\x9b\u202e"), repr(out)
        assert "alice?[2J?]0;pwned??31m?" in out
    shown = invoke(seeded.url, "show", "evil-1").stdout
    assert "\\u009b2Jy" in shown and "\\u001b[1m" in shown  # the data, escaped as in JSON


@pytest.mark.parametrize(
    "command", [["ls", "--json"], ["show", "--json", "evil-1"], ["stats", "--json"]]
)
def test_json_output_escapes_c1_controls_losslessly(seeded: Seeded, command: list[str]) -> None:
    seeded.store.set("evil-1", {"user": _EVIL})
    out = invoke(seeded.url, *command).stdout
    assert not any(c in out for c in "\x1b\x07\x9b\u202e"), repr(out)
    assert "\\u009b31m" in out
    strings: list[str] = []

    def collect(obj: dict[str, Any]) -> dict[str, Any]:
        strings.extend(map(str, obj.values()))
        return obj

    json.loads(out, object_hook=collect)
    assert _EVIL in strings  # nothing lost


@pytest.mark.parametrize(
    "command", [["ls"], ["ls", "--json"], ["show", "x"], ["rm", "x"], ["stats"], ["purge", "--yes"]]
)
def test_redis_down_is_one_line_and_exit_1(command: list[str]) -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    result = invoke(url, *command, expect=1)
    port = url.rsplit(":", 1)[1]
    assert result.stderr.endswith(
        f"Error: Redis at redis://:***@127.0.0.1:{port} is unavailable (connection)\n"
    )
    assert "Traceback" not in result.output and "hunter2" not in result.output
    assert "answering 503" not in result.output  # the store's server-side warning is muted


def test_invalid_url() -> None:
    result = invoke("http://127.0.0.1:1/", "ls", expect=1)
    assert result.stderr.startswith("Error: invalid Redis URL 'http://127.0.0.1:1/': ")
    assert len(result.stderr.splitlines()) == 1


def test_refused_command_is_one_line(make_server: MakeServer) -> None:
    server = make_server(appendonly=False, extra_args=["--rename-command", "SCAN", ""])
    result = invoke(server.url, "ls", expect=1)
    assert result.stderr.startswith(f"Error: Redis at {server.url} refused the command: ")
    assert "SCAN" in result.stderr.upper() and len(result.stderr.splitlines()) == 1


def test_show_and_stats_of_a_hash_without_metadata(clean_redis: Any, redis_url: str) -> None:
    clean_redis.hset("sess:{raw}", "views", "1")
    out = invoke(redis_url, "show", "raw").stdout
    assert re.search(r"^created\s+unknown\s*$", out, re.MULTILINE)
    assert re.search(r"^user\s+-\s*$", out, re.MULTILINE)
    out = invoke(redis_url, "stats").stdout
    assert re.search(r"^unknown\s+1\s+100\.0%", out, re.MULTILINE)  # age bucket
    assert "Top users" not in out


def test_main_entry_point(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("redis-sessions, version ")


def test_help_and_version() -> None:
    out = invoke(None, "--help").stdout
    for name in ("demo", "ls", "show", "rm", "stats", "purge", "server", "dashboard"):
        assert re.search(rf"^  {name}\s", out, re.MULTILINE), name
    assert "redis-sessions, version " in invoke(None, "--version").stdout


# -- topologies ---------------------------------------------------------------------------------


def test_commands_on_a_cluster_and_through_sentinel(
    redis_cluster: Any, sentinel_group: Any
) -> None:
    """ls / stats / show / rm / purge with ``redis+cluster://`` and ``redis+sentinel://`` URLs:
    a Cluster is listed primary by primary, every session once."""
    redis_cluster.flush()
    sentinel_group.flush()
    for url in (redis_cluster.url, sentinel_group.url()):
        store = RedisStore(url=url)
        try:
            for i in range(30):
                store.set(f"h{i:02}", {"user": f"u{i % 3}"})
        finally:
            store.close()
        listed = [row["handle"] for row in ls_json(url, "--limit", "0")]
        assert sorted(listed) == [f"h{i:02}" for i in range(30)]
        stats = json.loads(invoke(url, "stats", "--json").stdout)
        assert stats["count"] == 30
        assert json.loads(invoke(url, "show", "h01", "--json").stdout)["data"] == {"user": "u1"}
        invoke(url, "rm", "h01")
        assert invoke(url, "purge", "--yes").stdout.startswith("deleted 29 sessions")
