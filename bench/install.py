"""Install what the bench needs: the peers' packages, wrk and matplotlib.

Idempotent: a pip requirement is installed only when the running interpreter's environment
does not satisfy it, ``npm install`` runs only when ``node_modules`` is missing, and wrk is
installed with apt-get only as root and only when it is not on PATH.

Run ``python bench/install.py`` (all apps of the registry), or call `install` with some apps.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXPRESS_DIR = HERE / "peers" / "express"
EXTRA_PIP = ("matplotlib",)  # the chart

sys.path.insert(0, str(HERE / "peers"))
from registry import APPS, App  # noqa: E402


def satisfied(requirement: str) -> bool:
    """True when the environment already holds a distribution meeting `requirement`."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # no packaging: fall back to "name" / "name==version"
        name, _, pinned = requirement.partition("==")
        try:
            version = metadata.version(re.sub(r"\[.*\]", "", name).strip())
        except metadata.PackageNotFoundError:
            return False
        return not pinned or version == pinned.strip()
    req = Requirement(requirement)
    try:
        version = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        return False
    return req.specifier.contains(version, prereleases=True)


def pip_install(requirements: Iterable[str]) -> None:
    missing = [r for r in dict.fromkeys(requirements) if not satisfied(r)]
    if not missing:
        return
    print(f"pip install {' '.join(missing)}", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *missing], check=True)


def npm_install() -> None:
    if (EXPRESS_DIR / "node_modules").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is not on PATH: install Node.js (with npm) for the express peer")
    print(f"npm install in {EXPRESS_DIR}", flush=True)
    subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=EXPRESS_DIR, check=True)


def wrk_install() -> None:
    if shutil.which("wrk"):
        return
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("apt-get"):
        print(
            "wrk: not on PATH and cannot be installed here (needs root and apt-get); "
            "the runner falls back to its own load generator",
            flush=True,
        )
        return
    print("apt-get install wrk", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    quiet = {"env": env, "stdout": subprocess.DEVNULL}
    # An image whose package lists were never fetched finds no wrk: update once and retry.
    if subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, **quiet).returncode:
        subprocess.run(["apt-get", "update", "-qq"], check=False, **quiet)
        if subprocess.run(
            ["apt-get", "install", "-y", "-qq", "wrk"], check=False, **quiet
        ).returncode:
            print(
                "wrk: apt-get could not install it; the runner falls back to its own load "
                "generator",
                flush=True,
            )


def install(apps: Iterable[App] = APPS) -> None:
    """Install what `apps` need (their ``needs``), plus matplotlib and wrk."""
    needs = [need for app in apps for need in app.needs]
    pip_install([*(n.removeprefix("pip:") for n in needs if n.startswith("pip:")), *EXTRA_PIP])
    if "npm" in needs:
        npm_install()
    wrk_install()


def main() -> None:
    install(APPS)
    print("bench dependencies installed", flush=True)


if __name__ == "__main__":
    main()
