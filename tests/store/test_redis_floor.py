"""The lowest redis-py that pyproject.toml admits checks TLS host names.

redis-py checks the host name of a ``rediss://`` server by default only from 6.0.0 on (5.x did
not, and its sync Cluster client dropped the option), so the floor is 6.0.0. This test installs
exactly the declared floor into a temporary folder (from the package index, a few seconds) and,
in a subprocess that imports it, connects the sync and asyncio clients of `connect` /
`connect_async` through a TLS proxy whose certificate is from the trusted CA but for another
host: both must be refused, and the same clients must work with the right certificate.
"""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
from pathlib import Path

import trustme

import redis_sessions
from redis_sessions.server import LocalServer
from tests.support.tlsproxy import TLSProxy

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (supported): the same parser, from PyPI (the dev extra)
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
SRC = Path(redis_sessions.__file__).resolve().parents[1]

CHECK = r"""
import asyncio, sys
import redis
from redis_sessions import AsyncRedisStore, RedisStore, StoreUnavailableError
from redis_sessions import connect, connect_async
assert redis.__version__ == sys.argv[1], redis.__version__
ca, good, misnamed = sys.argv[2:5]

def sync(url):
    store = RedisStore(connect(url, ssl_ca_certs=ca))
    try:
        return store.set("h", {"a": 1}) and store.get("h") == {"a": 1}
    except StoreUnavailableError as exc:
        return str(exc)
    finally:
        store.close()

async def asynchronous(url):
    store = AsyncRedisStore(connect_async(url, ssl_ca_certs=ca))
    try:
        return await store.set("h", {"a": 1}) and await store.get("h") == {"a": 1}
    except StoreUnavailableError as exc:
        return str(exc)
    finally:
        await store.aclose()

for name, result in [("sync good", sync(good)), ("async good", asyncio.run(asynchronous(good))),
                     ("sync misnamed", sync(misnamed)),
                     ("async misnamed", asyncio.run(asynchronous(misnamed)))]:
    print(name, "=", result)
"""


def declared_floor() -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    found = [re.fullmatch(r"redis>=([\d.]+)", dep) for dep in deps]
    floors = [m.group(1) for m in found if m]
    assert len(floors) == 1, deps
    return floors[0]


def test_floor_checks_host_names(tmp_path: Path, redis_server: LocalServer) -> None:
    floor = declared_floor()
    assert tuple(int(p) for p in floor.split(".")[:2]) >= (6, 0), floor
    target = tmp_path / "redis-floor"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--disable-pip-version-check",
            "--target",
            str(target),
            f"redis=={floor}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert install.returncode == 0, install.stderr

    ca = trustme.CA()
    ca_pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    proxies = []
    for name in ("127.0.0.1", "not-this-host.example"):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(name).configure_cert(context)
        proxies.append(TLSProxy(redis_server.host, redis_server.port, context).start())
    try:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(SRC)])}
        run = subprocess.run(
            [
                sys.executable,
                "-W",
                "error",
                "-c",
                CHECK,
                floor,
                str(ca_pem),
                *(p.url for p in proxies),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
    finally:
        for proxy in proxies:
            proxy.stop()
    assert run.returncode == 0, run.stderr
    lines = dict(line.split(" = ", 1) for line in run.stdout.splitlines())
    assert lines["sync good"] == lines["async good"] == "True", lines
    for side in ("sync", "async"):
        assert "mismatch" in lines[f"{side} misnamed"], lines
