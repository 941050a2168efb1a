"""deploy/: the compose recipe's structure, and its topology run as local processes.

Docker does not run here, so the same topology runs as processes: one server (AOF, password),
the two app instances and the dashboard with the commands and environment of compose.yaml,
and Debian's nginx with deploy/nginx.conf (only the upstream addresses, listen ports and
temporary paths replaced). Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import itertools
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from redis_sessions.engine import handle_for
from redis_sessions.server import LocalServer, free_port
from tests.deploy.deploykit import (
    COMPOSE_FILE,
    DEPLOY_DIR,
    NGINX_CONF,
    Process,
    app_services,
    compose_env,
    interpolate,
    listen_ports,
    load_compose,
    localize_argv,
    localize_nginx_conf,
    option_value,
    proxied_upstream,
    service_argv,
    stop_all,
    upstream_blocks,
    upstream_servers,
    variables,
    visit,
)
from tests.support.servers import MakeServer, wait_until

pytestmark = pytest.mark.deploy

NGINX = "/usr/sbin/nginx"
# What deploy/.env holds in a real deployment.
ENV = {
    "REDIS_PASSWORD": "deploy-test-password",
    "SESSION_SECRET": "deploy-test-secret-0123456789abcdef",
    "DASHBOARD_TOKEN": "deploy-test-dashboard-token-0123",
}
SERVER_PORT = 6379
APP_PORT, DASHBOARD_PORT = 8080, 8081  # nginx's listen ports in nginx.conf
# How long nginx leaves out an instance it could not reach.
FAIL_TIMEOUT = float(re.findall(r"fail_timeout=(\d+)s", NGINX_CONF.read_text())[0])


# -- the compose file and nginx.conf ---------------------------------------------------------


def server_service(compose: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The one redis/valkey service: (name, service)."""
    found = [
        (name, service)
        for name, service in compose["services"].items()
        if re.search(r"(^|/)(redis|valkey)(:|$)", str(service.get("image", "")))
    ]
    assert len(found) == 1, f"expected one redis/valkey service, found {found}"
    return found[0]


def test_compose_server_has_aof_password_and_a_volume() -> None:
    compose = load_compose()
    _, server = server_service(compose)
    argv = service_argv(server)
    assert option_value(argv, "--appendonly") == "yes"
    password = option_value(argv, "--requirepass")
    assert variables(password) == {"REDIS_PASSWORD"}, "the password comes from deploy/.env"
    with pytest.raises(KeyError, match="REDIS_PASSWORD"):
        interpolate(password, {})  # required: no built-in default password
    volumes = [str(volume) for volume in server["volumes"]]
    assert any(volume.endswith(":/data") for volume in volumes), volumes
    named = [volume.split(":")[0] for volume in volumes if not volume.startswith((".", "/"))]
    assert all(name in compose["volumes"] for name in named), (named, compose["volumes"])
    assert "healthcheck" in server


def test_compose_apps_share_one_server_and_one_secret() -> None:
    compose = load_compose()
    server_name, server = server_service(compose)
    apps = app_services(compose)
    assert len(apps) >= 2, f"at least 2 app instances, found {sorted(apps)}"
    envs = [compose_env(app) for app in apps.values()]
    urls = {env["REDIS_SESSIONS_DEMO_URL"] for env in envs}
    secrets = {env["REDIS_SESSIONS_DEMO_SECRET"] for env in envs}
    assert len(urls) == 1 and len(secrets) == 1, (urls, secrets)
    url = urlsplit(interpolate(urls.pop(), ENV))
    assert (url.hostname, url.port) == (server_name, SERVER_PORT)
    assert url.password == interpolate(option_value(service_argv(server), "--requirepass"), ENV)
    assert variables(secrets.pop()) == {"SESSION_SECRET"}
    for name, app in apps.items():
        argv = service_argv(app)
        assert option_value(argv, "--workers") == "1", name
        assert "healthcheck" in app, name
        assert server_name in app["depends_on"], name


def test_compose_nginx_mounts_the_config_and_publishes_its_ports() -> None:
    compose = load_compose()
    nginx = compose["services"]["nginx"]
    # The main configuration, read-only, is this very file (paths are relative to compose.yaml).
    mounts = {volume.split(":")[1]: volume.split(":") for volume in nginx["volumes"]}
    source, _, mode = mounts["/etc/nginx/nginx.conf"]
    assert (COMPOSE_FILE.parent / source).resolve() == NGINX_CONF and mode == "ro"
    published = {int(str(port).rsplit(":", 1)[1]) for port in nginx["ports"]}
    assert published == set(listen_ports(NGINX_CONF.read_text())) == {APP_PORT, DASHBOARD_PORT}
    assert set(app_services(compose)) | {"dashboard"} <= set(nginx["depends_on"])


def test_compose_dashboard_needs_a_token_and_uses_the_apps_server() -> None:
    compose = load_compose()
    dashboard = compose["services"]["dashboard"]
    argv = service_argv(dashboard)
    assert argv[:2] == ["redis-sessions", "dashboard"]
    env = compose_env(dashboard)
    assert variables(env["REDIS_SESSIONS_DASHBOARD_TOKEN"]) == {"DASHBOARD_TOKEN"}
    app_url = compose_env(next(iter(app_services(compose).values())))["REDIS_SESSIONS_DEMO_URL"]
    assert env["REDIS_URL"] == app_url


def test_nginx_logs_the_dashboard_without_its_query() -> None:
    # A ?token= visit must not reach the log: the dashboard's server logs $uri, not $request.
    conf = NGINX_CONF.read_text()
    server = conf[conf.index(f"listen {DASHBOARD_PORT};") :]
    log_format = re.search(r"access_log\s+\S+\s+(\w+);", server)
    assert log_format, "no access_log in the dashboard's server"
    found = re.search(rf"log_format {log_format.group(1)}\b(.*?);", conf, re.DOTALL)
    assert found, log_format.group(1)
    assert "$uri" in found.group(1)
    for leaky in ("$request ", '$request"', "$request_uri", "$args", "$query_string"):
        assert leaky not in found.group(1), leaky


def test_compose_depends_on_names_existing_services() -> None:
    services = load_compose()["services"]
    checked = 0
    for name, service in services.items():
        for dependency in service.get("depends_on") or []:
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            checked += 1
    assert checked >= 5


def test_no_sticky_sessions() -> None:
    conf = NGINX_CONF.read_text()
    directives = {
        re.split(r"[\s;]", line, maxsplit=1)[0]
        for lines in upstream_blocks(conf).values()
        for line in lines
    }
    assert "server" in directives
    for sticky in ("ip_hash", "hash", "sticky", "least_conn", "random"):
        assert sticky not in directives, f"{sticky} in an upstream"
    for name, app in app_services(load_compose()).items():
        assert "sticky" not in str(app).lower(), name


def test_nginx_upstream_lists_exactly_the_app_services() -> None:
    compose = load_compose()
    conf = NGINX_CONF.read_text()
    servers = upstream_servers(conf, proxied_upstream(conf, APP_PORT))
    expected = sorted(
        f"{name}:{option_value(service_argv(app), '--port')}"
        for name, app in app_services(compose).items()
    )
    assert sorted(servers) == expected
    dashboard_port = option_value(service_argv(compose["services"]["dashboard"]), "--port")
    assert upstream_servers(conf, proxied_upstream(conf, DASHBOARD_PORT)) == [
        f"dashboard:{dashboard_port}"
    ]


def test_readme_names_the_variables_and_the_test_command() -> None:
    readme = (DEPLOY_DIR / "README.md").read_text()
    for name in variables(load_compose()):
        assert name in readme, name
    assert "docker compose -f deploy/compose.yaml up" in readme
    assert ".venv/bin/pytest tests/deploy -m deploy" in readme


# -- the topology as processes ---------------------------------------------------------------


@dataclass
class Topology:
    """The running processes and the addresses to reach them."""

    server: LocalServer
    apps: dict[str, Process]
    dashboard: Process
    nginx: Process
    url: str  # the demo through nginx
    dashboard_url: str  # the dashboard through nginx

    def pids(self) -> dict[int, str]:
        """``{pid: app service name}`` of the running app instances."""
        return {app.pid: name for name, app in self.apps.items()}


def nginx_binary() -> str:
    """Debian's nginx; a failure (never a skip) when it is missing."""
    if not Path(NGINX).is_file():
        pytest.fail(
            f"{NGINX} is missing: run `make test` as root (it installs nginx), "
            "or `apt-get install nginx`"
        )
    return NGINX


@pytest.fixture
def topology(make_server: MakeServer, tmp_path: Path) -> Iterator[Topology]:
    """Server, two app instances, dashboard and nginx, from deploy/; all stopped afterwards."""
    binary = nginx_binary()
    compose = load_compose()
    server_name, server_spec = server_service(compose)
    server_argv = service_argv(server_spec)
    server = make_server(
        appendonly=option_value(server_argv, "--appendonly") == "yes",
        appendfsync=option_value(server_argv, "--appendfsync"),
        password=interpolate(option_value(server_argv, "--requirepass"), ENV),
    )
    ports = {name: free_port() for name in [*app_services(compose), "dashboard"]}
    # Container addresses -> local ones, in URLs (valkey:6379) and in nginx.conf (app1:8000).
    addresses = {
        f"{name}:{option_value(service_argv(compose['services'][name]), '--port')}": (
            f"127.0.0.1:{port}"
        )
        for name, port in ports.items()
    }
    addresses[f"{server_name}:{SERVER_PORT}"] = f"127.0.0.1:{server.port}"

    def local_env(service: dict[str, Any]) -> dict[str, str]:
        env = {}
        for key, value in compose_env(service).items():
            value = interpolate(value, ENV)
            for container, local in addresses.items():
                value = value.replace(f"@{container}/", f"@{local}/")
            env[key] = value
        return env

    def process(name: str, ready_path: str) -> Process:
        spec = compose["services"][name]
        return Process(
            name,
            localize_argv(service_argv(spec), "127.0.0.1", ports[name]),
            tmp_path / f"{name}.log",
            local_env(spec),
            f"http://127.0.0.1:{ports[name]}{ready_path}",
        )

    # /api/me answers 401 without storing a session (the compose healthcheck does the same).
    apps = {name: process(name, "/api/me") for name in app_services(compose)}
    dashboard = process("dashboard", "/")
    nginx_ports = {APP_PORT: free_port(), DASHBOARD_PORT: free_port()}
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    nginx = Process(
        "nginx",
        [
            binary,
            "-c",
            str(prefix / "nginx.conf"),
            "-p",
            str(prefix),
            "-g",
            f"daemon off; pid {prefix / 'nginx.pid'};",
        ],
        tmp_path / "nginx.log",
        ready_url=f"http://127.0.0.1:{nginx_ports[APP_PORT]}/healthz",
    )
    everything = [*apps.values(), dashboard, nginx]
    # Temporary files in a directory the workers can reach when nginx runs as root (they drop
    # to an unprivileged user; pytest's tmp_path is private to root).
    temp_dir = Path(tempfile.mkdtemp(prefix="rs-nginx-"))
    try:
        temp_dir.chmod(0o755)
        (prefix / "nginx.conf").write_text(
            localize_nginx_conf(NGINX_CONF.read_text(), addresses, nginx_ports, temp_dir)
        )
        # The app URL the processes get is the server's own URL: same host, password and db.
        for app in apps.values():
            assert app.env["REDIS_SESSIONS_DEMO_URL"] == server.url
        for proc in everything:  # nginx needs no upstream to start: they are addresses here
            proc.start()
        for proc in everything:
            proc.wait_ready()
        yield Topology(
            server,
            apps,
            dashboard,
            nginx,
            f"http://127.0.0.1:{nginx_ports[APP_PORT]}/",
            f"http://127.0.0.1:{nginx_ports[DASHBOARD_PORT]}/",
        )
    finally:
        try:
            stop_all(everything)
        finally:
            shutil.rmtree(temp_dir, ignore_errors=True)


def test_requests_alternate_and_share_one_session(topology: Topology) -> None:
    pids = topology.pids()
    with httpx.Client(base_url=topology.url) as client:
        seen = [visit(client, "") for _ in range(10)]
        # One session, one count: +1 per request whichever instance served it.
        assert [count for count, _ in seen] == list(range(1, 11))
        served = [pids[pid] for _, pid in seen]
        assert sorted(set(served)) == sorted(topology.apps)
        # Round robin: never the same instance twice in a row.
        assert all(a != b for a, b in itertools.pairwise(served)), served
        # A login on one instance (new session id) is seen by the other, with the count.
        csrf = re.search(r"name=csrf value=([\w-]+)", client.get("login").text)
        assert csrf, "no CSRF field in the login form"
        assert client.post("login", data={"user": "ada", "csrf": csrf.group(1)}).status_code == 303
        answers = [client.get("api/me").json() for _ in range(2)]
        session_id = client.cookies["session"].split(".")[0]
        # The instances' own token-less dashboards are not reachable through nginx.
        assert client.get("_sessions/").status_code == 404
    assert [(answer["user"], answer["views"]) for answer in answers] == [("ada", 10)] * 2
    assert {pids[answer["pid"]] for answer in answers} == set(topology.apps)
    log = topology.nginx.log.read_text()
    for app in topology.apps.values():
        assert f"upstream={urlsplit(app.ready_url).netloc} " in log, log
    with httpx.Client() as other:  # another visitor has a count of their own
        assert visit(other, topology.url)[0] == 1
    # The dashboard, through nginx, with its token only, shows the session.
    with httpx.Client(base_url=topology.dashboard_url) as dashboard:
        assert dashboard.get("").headers["location"] == "/_dashboard/"
        assert dashboard.get("_dashboard/").status_code == 401
        token = {"authorization": f"Bearer {ENV['DASHBOARD_TOKEN']}"}
        page = dashboard.get("_dashboard/", params={"user": "ada"}, headers=token)
        login = dashboard.get("_dashboard/", params={"token": ENV["DASHBOARD_TOKEN"]})
    assert page.status_code == 200
    assert handle_for(session_id)[:12] in page.text and "ada" in page.text
    assert login.status_code == 303 and login.headers["location"] == "/_dashboard/"
    # The dashboard's access log has the path, not the query with the token.
    wait_until(
        lambda: "GET /_dashboard/" in topology.nginx.log.read_text(),
        5,
        message="no dashboard line in the nginx log",
    )
    assert ENV["DASHBOARD_TOKEN"] not in topology.nginx.log.read_text()


def test_the_session_survives_restarting_either_instance(topology: Topology) -> None:
    with httpx.Client() as client:
        count = 0

        def step(allowed: set[int]) -> int:
            """One visit: the count goes up by one, served by an instance in `allowed`."""
            nonlocal count
            count += 1
            seen, pid = visit(client, topology.url)
            assert seen == count and pid in allowed, (seen, count, pid, allowed)
            return pid

        for _ in range(2):
            step(set(topology.pids()))
        for name, app in topology.apps.items():
            others = {pid for pid in topology.pids() if pid != app.pid}
            old_pid = app.pid
            app.stop()
            assert app.proc is not None and app.proc.returncode is not None
            # nginx fails over to the other instance: nobody notices the restart.
            for _ in range(4):
                step(others)
            app.start().wait_ready()
            assert app.pid != old_pid

            def served_by_restarted(pid: int = app.pid, others: set[int] = others) -> bool:
                return step({pid, *others}) == pid

            # Back in rotation once nginx retries it (after fail_timeout).
            wait_until(
                served_by_restarted,
                FAIL_TIMEOUT + 5,
                interval=0.1,
                message=f"nginx never sent a request to the restarted {name}",
            )
        # Both restarted instances share the session again, alternately.
        served = [step(set(topology.pids())) for _ in range(4)]
        assert all(a != b for a, b in itertools.pairwise(served)), served


def test_the_session_survives_a_server_restart(topology: Topology) -> None:
    with httpx.Client() as client:
        counts = [visit(client, topology.url)[0] for _ in range(3)]
        assert counts == [1, 2, 3]
        old_pid = topology.server.pid
        topology.server.restart()  # SIGTERM, then a new process replays the append-only file
        assert topology.server.pid != old_pid
        assert any((topology.server.data_dir / "appendonlydir").iterdir())
        # Each instance reconnects by itself; visit both of them.
        after = [visit(client, topology.url) for _ in range(4)]
    assert [count for count, _ in after] == [4, 5, 6, 7]
    assert {pid for _, pid in after} == set(topology.pids())
