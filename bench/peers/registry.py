"""The apps `make bench` compares, each serving the same routes over HTTP on 127.0.0.1.

Every app serves:

- ``GET /read``: read the counter ``n`` from the session (0 when missing) and answer it;
- ``GET /incr``: ``n = n + 1`` in the session (read-modify-write, as every peer does it);
- ``GET /untouched``: a response that never uses the session;
- ``GET /atomic`` (apps with an atomic helper only): increment ``n`` atomically.

A first visit is ``GET /incr`` without a cookie (a new session is created and written).
Apps read ``REDIS_URL`` from the environment and listen on the port their command names.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable


@dataclass(frozen=True)
class App:
    """How to start one app and what it offers.

    Attributes:
        name: short name used in tables and the chart.
        label: what it is (framework, server, session library).
        command: argv; ``{port}`` and ``{workers}`` are filled in.
        cookie: the session cookie's name.
        sessions: False for the framework alone (no session at all).
        atomic: True when ``/atomic`` exists (an atomic increment helper).
        needs: what must be installed first: ``pip:<requirement>`` or ``npm``.
        group: ``"asgi"``, ``"wsgi"`` or ``"node"`` (which apps a ratio compares).
    """

    name: str
    label: str
    command: tuple[str, ...]
    cookie: str = "session"
    sessions: bool = True
    atomic: bool = False
    needs: tuple[str, ...] = ()
    group: str = "asgi"
    env: dict[str, str] = field(default_factory=dict)


# uvicorn as deployed (uvicorn[standard]): uvloop and httptools, for every ASGI app alike.
UVICORN_NEEDS = ("pip:uvloop", "pip:httptools")


def uvicorn(module: str) -> tuple[str, ...]:
    return (
        PY,
        "-m",
        "uvicorn",
        f"{module}:app",
        "--app-dir",
        str(HERE),
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--workers",
        "{workers}",
        "--log-level",
        "warning",
        "--no-access-log",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
    )


def gunicorn(module: str) -> tuple[str, ...]:
    return (
        PY,
        "-m",
        "gunicorn",
        f"{module}:app",
        "--chdir",
        str(HERE),
        "--bind",
        "127.0.0.1:{port}",
        "--workers",
        "{workers}",
        "--worker-class",
        "sync",
        "--log-level",
        "warning",
    )


APPS: tuple[App, ...] = (
    App(
        "ours-asgi",
        "redis-sessions ASGI middleware, Starlette, uvicorn",
        uvicorn("ours_asgi"),
        atomic=True,
        needs=UVICORN_NEEDS,
    ),
    App(
        "ours-wsgi",
        "redis-sessions Flask integration, gunicorn (sync)",
        gunicorn("ours_flask"),
        atomic=True,
        needs=("pip:gunicorn",),
        group="wsgi",
    ),
    App(
        "starsessions",
        "starsessions 2.2 SessionMiddleware + RedisStore, Starlette, uvicorn",
        uvicorn("starsessions_app"),
        needs=("pip:starsessions==2.2.1", *UVICORN_NEEDS),
    ),
    App(
        "flask-session",
        "Flask-Session 0.8 redis backend, gunicorn (sync)",
        gunicorn("flask_session_app"),
        needs=("pip:Flask-Session==0.8.0", "pip:gunicorn"),
        group="wsgi",
    ),
    App(
        "litestar",
        "Litestar server-side sessions + litestar RedisStore, uvicorn",
        uvicorn("litestar_app"),
        needs=("pip:litestar>=2.8,<3", *UVICORN_NEEDS),
    ),
    App(
        "express",
        "express-session + connect-redis 10 + node-redis, node cluster",
        ("node", str(HERE / "express" / "app.js"), "{port}", "{workers}"),
        cookie="connect.sid",
        needs=("npm",),
        group="node",
    ),
    App(
        "handwritten",
        "Starlette + redis.asyncio by hand: GET (read), GET+SET (modify)",
        uvicorn("handwritten"),
        cookie="sid",
        needs=UVICORN_NEEDS,
    ),
    App(
        "starlette-bare",
        "Starlette alone, no session (the framework's ceiling)",
        uvicorn("bare"),
        sessions=False,
        needs=UVICORN_NEEDS,
    ),
    App(
        "flask-bare",
        "Flask alone under gunicorn (sync), no session (the WSGI ceiling)",
        gunicorn("flask_bare"),
        sessions=False,
        needs=("pip:gunicorn",),
        group="wsgi",
    ),
)
