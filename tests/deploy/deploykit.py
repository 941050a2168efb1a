"""Helpers for the deploy tests: read deploy/compose.yaml and deploy/nginx.conf, and run their
services as local processes.

The compose file stays the source of truth: the app and dashboard commands, their environment
and the server options are taken from it, with only host names, ports and secrets replaced.
"""

from __future__ import annotations

import http.client
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from redis_sessions import _tied
from tests.support.servers import wait_until

__all__ = [
    "COMPOSE_FILE",
    "DEPLOY_DIR",
    "NGINX_CONF",
    "Process",
    "app_services",
    "compose_env",
    "interpolate",
    "listen_ports",
    "load_compose",
    "localize_argv",
    "localize_nginx_conf",
    "option_value",
    "proxied_upstream",
    "service_argv",
    "stop_all",
    "upstream_blocks",
    "upstream_servers",
    "variables",
    "visit",
]

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE_FILE = DEPLOY_DIR / "compose.yaml"
NGINX_CONF = DEPLOY_DIR / "nginx.conf"
APP_FACTORY = "redis_sessions.demo:create_app_from_env"

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}; $$ is a literal $.
_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}")
_UPSTREAM = re.compile(r"^\s*upstream\s+(?P<name>\S+)\s*\{(?P<body>[^}]*)\}", re.MULTILINE)
_SERVER_LINE = re.compile(
    r"^(?P<indent>\s*)server\s+(?P<address>[^\s;]+)(?P<rest>[^;\n]*;)", re.MULTILINE
)
_LISTEN_LINE = re.compile(r"^(?P<indent>\s*)listen\s+(?P<port>\d+)\s*;", re.MULTILINE)
_HTTP_OPEN = re.compile(r"^http\s*\{\s*$", re.MULTILINE)
_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def load_compose() -> dict[str, Any]:
    """deploy/compose.yaml as plain data (YAML anchors and merge keys resolved)."""
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), data
    return data


def variables(value: object) -> set[str]:
    """Names of the ``${VAR...}`` interpolations anywhere in `value` (nested data included)."""
    if isinstance(value, str):
        return {m["name"] for m in _VARIABLE.finditer(value) if m["name"]}
    if isinstance(value, Mapping):
        return set().union(*(variables(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(variables(v) for v in value)) if value else set()
    return set()


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable substitution on `text`, with `env` standing for deploy/.env.

    A required variable (``:?``) missing from `env` raises, as ``docker compose`` would.
    """

    def substitute(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if name is None:
            return "$"
        value = env.get(name)
        if op in (":?", "?") and (value is None or (op == ":?" and value == "")):
            raise KeyError(f"required variable {name}: {arg}")
        if op in (":-", "-") and (value is None or (op == ":-" and value == "")):
            return arg
        return value or ""

    return _VARIABLE.sub(substitute, text)


def service_argv(service: Mapping[str, Any]) -> list[str]:
    """A service's ``command`` as an argument list (compose accepts a string too)."""
    command = service.get("command")
    if isinstance(command, str):
        return shlex.split(command)
    assert isinstance(command, list), f"no command: {service}"
    return [str(part) for part in command]


def compose_env(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's ``environment`` as a dict (compose accepts a list of ``KEY=value`` too)."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        return dict(str(item).split("=", 1) for item in environment)
    return {str(key): str(value) for key, value in environment.items()}


def option_value(argv: Sequence[str], option: str) -> str:
    """The value following `option` (``--port 8000``) in `argv`."""
    assert option in argv[:-1], f"{option} missing from {argv}"
    return argv[argv.index(option) + 1]


def app_services(compose: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The services running the demo app (the uvicorn factory of redis_sessions.demo)."""
    return {
        name: service
        for name, service in compose["services"].items()
        if "command" in service and APP_FACTORY in service_argv(service)
    }


def localize_argv(argv: Sequence[str], host: str, port: int) -> list[str]:
    """A compose command run here: the console script from this venv, `host` and `port`."""
    script = Path(sys.executable).with_name(argv[0])
    assert script.is_file(), f"{argv[0]} is not installed in {script.parent}"
    result = [str(script), *argv[1:]]
    result[result.index("--host") + 1] = host
    result[result.index("--port") + 1] = str(port)
    return result


def upstream_blocks(conf: str) -> dict[str, list[str]]:
    """``{upstream name: its lines}`` of an nginx configuration (comments dropped)."""
    text = re.sub(r"#[^\n]*", "", conf)
    return {
        match["name"]: [line.strip() for line in match["body"].splitlines() if line.strip()]
        for match in _UPSTREAM.finditer(text)
    }


def upstream_servers(conf: str, name: str) -> list[str]:
    """The addresses of the ``server`` lines of upstream `name`."""
    return [
        line.split()[1].rstrip(";")
        for line in upstream_blocks(conf)[name]
        if line.split()[0] == "server"
    ]


def proxied_upstream(conf: str, port: int) -> str:
    """The upstream that ``location /`` of the server listening on `port` proxies to."""
    text = re.sub(r"#[^\n]*", "", conf)
    match = re.search(
        rf"listen\s+{port};.*?location\s+/\s*\{{[^}}]*proxy_pass\s+http://(\w+);", text, re.DOTALL
    )
    assert match, f"no `location /` with proxy_pass in the server on port {port}"
    return match.group(1)


def listen_ports(conf: str) -> list[int]:
    """The ports of the ``listen PORT;`` lines."""
    return [int(match["port"]) for match in _LISTEN_LINE.finditer(conf)]


def localize_nginx_conf(
    conf: str, addresses: Mapping[str, str], ports: Mapping[int, int], temp_dir: Path
) -> str:
    """deploy/nginx.conf for a local run: upstream `addresses` and listen `ports` replaced.

    Every ``server`` address and every ``listen`` port must have a replacement, so that a new
    one in the file cannot silently keep pointing at a container name. The temporary files go
    to `temp_dir` (the compiled-in ones need root).
    """

    def server(match: re.Match[str]) -> str:
        address = match["address"]
        assert address in addresses, f"no local address for upstream server {address}"
        return f"{match['indent']}server {addresses[address]}{match['rest']}"

    def listen(match: re.Match[str]) -> str:
        port = int(match["port"])
        assert port in ports, f"no local port for listen {port}"
        return f"{match['indent']}listen 127.0.0.1:{ports[port]};"

    servers = 0

    def upstream(match: re.Match[str]) -> str:
        nonlocal servers
        body, count = _SERVER_LINE.subn(server, match["body"])
        servers += count
        return match[0].replace(match["body"], body)

    text = _UPSTREAM.sub(upstream, conf)
    text, listens = _LISTEN_LINE.subn(listen, text)
    assert servers and listens == len(ports), (servers, listens)
    temp = "".join(f"    {kind}_temp_path {temp_dir / kind};\n" for kind in _TEMP_PATHS)
    text, opened = _HTTP_OPEN.subn(lambda m: m[0] + "\n" + temp, text)
    assert opened == 1, "expected exactly one `http {` line"
    return text


@dataclass
class Process:
    """One service run as a local process; stopped by the PID it was started with."""

    name: str
    argv: list[str]
    log: Path
    env: Mapping[str, str] = field(default_factory=dict)
    ready_url: str = ""
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """PID of the running process."""
        assert self.proc is not None and self.proc.poll() is None, f"{self.name} is not running"
        return self.proc.pid

    def start(self) -> Process:
        """Start the process (output appended to `log`); `wait_ready` waits for it."""
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} is running"
        with self.log.open("ab") as out:  # the child keeps its own descriptor
            self.proc = _tied.popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
        return self

    def answering(self) -> bool:
        """True once `ready_url` gives any HTTP answer; fails at once if the process died."""
        assert self.proc is not None
        code = self.proc.poll()
        assert code is None, f"{self.name} exited with {code}:\n{self.log.read_text()[-3000:]}"
        url = urlsplit(self.ready_url)
        # http.client rather than httpx: no TLS context to build on every poll.
        connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=0.5)
        try:
            connection.request("GET", url.path or "/")
            connection.getresponse().read()
        except OSError:
            return False
        finally:
            connection.close()
        return True

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Poll `ready_url` until the process answers."""
        wait_until(
            self.answering,
            timeout,
            interval=0.05,
            message=f"{self.name} did not answer {self.ready_url} within {timeout}s:\n"
            f"{self.log.read_text()[-3000:]}",
        )

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, wait, SIGKILL after `timeout`; a no-op when not running."""
        stop_all([self], timeout)


def stop_all(processes: Sequence[Process], timeout: float = 5.0) -> None:
    """Stop `processes` by their PIDs: SIGTERM to all first (they shut down in parallel), then
    wait for each, SIGKILL for one still running after `timeout` seconds."""
    running = [p.proc for p in processes if p.proc is not None and p.proc.poll() is None]
    for proc in running:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in running:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def visit(client: httpx.Client, url: str) -> tuple[int, int]:
    """GET the demo's counter page: (visit count, pid of the instance that served it)."""
    response = client.get(url)
    assert response.status_code == 200, (response.status_code, response.text[:500])
    count = re.search(r"visited this page (\d+) time", response.text)
    pid = re.search(r"pid (\d+)", response.text)
    assert count and pid, response.text
    return int(count.group(1)), int(pid.group(1))
