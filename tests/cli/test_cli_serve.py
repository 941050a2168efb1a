"""demo, server and dashboard in-process: option parsing and what they call (the real runs are
in test_cli_processes.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.cli.clikit import invoke


def record_calls(monkeypatch: pytest.MonkeyPatch, target: str, result: Any = 0) -> list[Any]:
    calls: list[Any] = []

    def fake(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        return result

    monkeypatch.setattr(target, fake)
    return calls


def test_demo_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    calls = record_calls(monkeypatch, "redis_sessions.demo.run")
    # REDIS_URL is for the data commands: the demo runs its own server unless --url is given.
    out = invoke(None, "demo", env={"REDIS_URL": "redis://elsewhere:6379/0"}).stdout
    assert out == f"data directory: {tmp_path / '.redis-sessions-data'}\n"
    assert calls == [
        ((), {"url": None, "data_dir": ".redis-sessions-data", "port": 8000, "workers": 2})
    ]


def test_demo_options_and_exit_status(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = record_calls(monkeypatch, "redis_sessions.demo.run", result=3)
    invoke(
        "redis://127.0.0.1:1/0",
        "demo",
        "--port",
        "9001",
        "--workers",
        "4",
        "--dir",
        str(tmp_path / "d"),
        expect=3,
    )
    assert calls == [
        (
            (),
            {
                "url": "redis://127.0.0.1:1/0",
                "data_dir": str(tmp_path / "d"),
                "port": 9001,
                "workers": 4,
            },
        )
    ]
    invoke(None, "demo", "--workers", "0", expect=2)


def test_server_passes_its_options(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = record_calls(monkeypatch, "redis_sessions.server.main")
    invoke(None, "server")
    invoke(None, "server", "--port", "6390", "--dir", "/tmp/x", "--appendfsync", "always")
    assert [args for args, _ in calls] == [
        (["--dir", ".redis-sessions-data", "--appendfsync", "everysec"],),
        (["--dir", "/tmp/x", "--appendfsync", "always", "--port", "6390"],),
    ]
    assert (
        "'sometimes' is not one of"
        in invoke(None, "server", "--appendfsync", "sometimes", expect=2).stderr
    )


def test_dashboard_refuses_a_public_address_without_a_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = record_calls(monkeypatch, "uvicorn.run")
    result = invoke(
        "redis://127.0.0.1:1/0",
        "dashboard",
        "--host",
        "0.0.0.0",
        "--no-token",
        expect=2,
        env={"REDIS_SESSIONS_DASHBOARD_TOKEN": None},
    )
    assert result.stderr.startswith("Error: refusing to serve the sessions dashboard on '0.0.0.0'")
    assert len(result.stderr.splitlines()) == 1
    assert calls == []


def test_dashboard_serves_the_app(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, clean_redis: Any
) -> None:
    calls = record_calls(monkeypatch, "uvicorn.run")
    token = "t" * 32
    result = invoke(
        redis_url,
        "--prefix",
        "app:",
        "dashboard",
        "--host",
        "0.0.0.0",
        "--port",
        "8123",
        env={"REDIS_SESSIONS_DASHBOARD_TOKEN": token},
    )
    assert result.stdout == (
        f"dashboard at http://0.0.0.0:8123/_dashboard/ for {redis_url} "
        "(prefix 'app:'); Ctrl-C to stop\n"
    )
    assert "warning" not in result.stderr  # the environment is the quiet way
    ((app,), kwargs) = calls[0]
    assert kwargs == {"host": "0.0.0.0", "port": 8123, "log_level": "warning"}
    with TestClient(
        app, base_url="http://127.0.0.1:8123", client=("10.0.0.5", 50000), follow_redirects=False
    ) as client:
        assert client.get("/").headers["location"] == "/_dashboard/"
        assert client.get("/_dashboard/").status_code == 401
        bearer = {"authorization": f"Bearer {token}"}
        assert client.get("/_dashboard/", headers=bearer).status_code == 200
        login = client.get("/_dashboard/", params={"token": token})
    assert "path=/_dashboard;" in login.headers["set-cookie"].lower()


def test_dashboard_makes_a_token_and_prints_the_url_to_open(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, clean_redis: Any
) -> None:
    calls = record_calls(monkeypatch, "uvicorn.run")
    out = invoke(redis_url, "dashboard", env={"REDIS_SESSIONS_DASHBOARD_TOKEN": None}).stdout
    found = re.search(r"http://127\.0\.0\.1:8001/_dashboard/\?token=([\w-]{43})\n", out)
    assert found, out
    ((app,), _) = calls[0]
    with TestClient(
        app, base_url="http://127.0.0.1:8001", client=("127.0.0.1", 50000), follow_redirects=False
    ) as client:
        assert client.get("/_dashboard/").status_code == 401  # no token-less access by default
        login = client.get("/_dashboard/", params={"token": found.group(1)})
        assert login.status_code == 303 and login.headers["location"] == "/_dashboard/"
        assert client.get("/_dashboard/").status_code == 200
    again = invoke(redis_url, "dashboard", env={"REDIS_SESSIONS_DASHBOARD_TOKEN": None}).stdout
    assert "?token=" in again and found.group(1) not in again  # a new token each run


def test_dashboard_no_token_is_loopback_only_and_never_proxied(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, clean_redis: Any
) -> None:
    calls = record_calls(monkeypatch, "uvicorn.run")
    out = invoke(
        redis_url, "dashboard", "--no-token", env={"REDIS_SESSIONS_DASHBOARD_TOKEN": None}
    ).stdout
    assert "token=" not in out
    ((app,), _) = calls[0]
    with TestClient(app, base_url="http://127.0.0.1:8001", client=("127.0.0.1", 50000)) as client:
        assert client.get("/_dashboard/").status_code == 200
        relayed = client.get("/_dashboard/", headers={"x-forwarded-for": "203.0.113.9"})
    assert relayed.status_code == 403
    assert (
        invoke(redis_url, "dashboard", "--no-token", "--token", "t" * 32, expect=2).stderr.count(
            "exclude each other"
        )
        == 1
    )


def test_dashboard_warns_of_a_token_on_the_command_line(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, clean_redis: Any, tmp_path: Path
) -> None:
    calls = record_calls(monkeypatch, "uvicorn.run")
    token = "c" * 32
    result = invoke(
        redis_url, "dashboard", "--token", token, env={"REDIS_SESSIONS_DASHBOARD_TOKEN": None}
    )
    assert "warning: --token shows in the process list (ps)" in result.stderr
    assert token not in result.stdout
    token_file = tmp_path / "token"
    token_file.write_text("f" * 32 + "\n")
    quiet = invoke(
        redis_url,
        "dashboard",
        "--token-file",
        str(token_file),
        env={"REDIS_SESSIONS_DASHBOARD_TOKEN": None},
    )
    assert "warning" not in quiet.stderr and "token=" not in quiet.stdout
    ((app,), _) = calls[1]
    with TestClient(app, base_url="http://127.0.0.1:8001") as client:
        bearer = {"authorization": "Bearer " + "f" * 32}
        assert client.get("/_dashboard/", headers=bearer).status_code == 200
    assert len(calls) == 2


def test_dashboard_invalid_url(monkeypatch: pytest.MonkeyPatch) -> None:
    record_calls(monkeypatch, "uvicorn.run")
    result = invoke("http://nowhere/", "dashboard", expect=1)
    assert result.stderr.startswith("Error: invalid Redis URL 'http://nowhere/'")
