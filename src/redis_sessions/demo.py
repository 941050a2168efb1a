"""The demo: a visit counter and a login, served by several workers on one Redis.

``redis-sessions demo`` (or ``make demo``, or ``python -m redis_sessions.demo``) starts the
embedded, persistent server (AOF in the data directory, with the signing secret), then this app
under uvicorn with 2 worker processes. Each page shows which worker served it: requests spread
over the workers while the count stays right, and it keeps counting after a restart of the
demo. ``--url`` uses an existing Redis instead.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import html
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from ._redact import redact_url

__all__ = ["create_app", "create_app_from_env", "dashboard_token", "main", "run"]

DEFAULT_DIR = ".redis-sessions-data"
_ENV_URL = "REDIS_SESSIONS_DEMO_URL"
_ENV_SECRET = "REDIS_SESSIONS_DEMO_SECRET"
_ENV_WHERE = "REDIS_SESSIONS_DEMO_WHERE"

_STYLE = """body{font-family:system-ui,sans-serif;max-width:44em;margin:3em auto;padding:0 1em;
color:#1d2433}h1{font-size:1.7em}code{background:#eef1f6;padding:.1em .3em;border-radius:4px}
.box{border:1px solid #d5dbe5;border-radius:8px;padding:1em 1.2em;margin:1.2em 0}
.pid{font-size:1.2em;font-weight:600;color:#2458c6}button,input{font-size:1em;padding:.35em .7em}
nav a{margin-right:1em}"""


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style><body><nav><a href=/>Counter</a><a href=/login>Log in</a>"
        f"<a href=/api/me>API: /api/me</a><a href=/_sessions/>Sessions dashboard</a></nav>"
        f"{body}</body>"
    )


def dashboard_token(secret: str) -> str:
    """The token of the demo's dashboard, derived from its signing secret: the same in every
    worker and across restarts, and it reveals nothing of the secret."""
    mac = hmac.new(secret.encode(), b"redis-sessions demo dashboard token", hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")


def create_app(redis_url: str, secret: str, where: str | None = None) -> Any:
    """The demo ASGI app: Starlette with the session middleware, as the README shows."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
    from starlette.routing import Mount, Route

    from .asgi import SessionMiddleware, get_session
    from .store._async import AsyncRedisStore

    where = where or redact_url(redis_url)
    pid = os.getpid()

    async def counter(request: Request) -> Response:
        session = get_session(request)
        count = session.get("count", 0) + 1
        session["count"] = count
        user = session.get("user")
        who = f"logged in as <b>{html.escape(str(user))}</b>" if user else "not logged in"
        body = f"""<h1>You have visited this page {count} time{"" if count == 1 else "s"}.</h1>
<div class=box>Served by worker process <span class=pid>pid {pid}</span>. Reload a few times:
the requests spread over the workers, and the count stays right, because the session lives in
Redis, not in a worker.</div>
<p>You are {who}.</p>
<p>The session data is in Redis at <code>{html.escape(where)}</code>; the cookie only carries a
signed random id. Restart the demo: the count goes on and everyone stays logged in.</p>"""
        # A new connection per page view, so a browser sees more than one worker.
        return HTMLResponse(_page("redis-sessions demo", body), headers={"connection": "close"})

    async def login(request: Request) -> Response:
        session = get_session(request)
        if request.method == "POST":
            form = parse_qs((await request.body()).decode("utf-8", "replace"))
            name = (form.get("user") or [""])[0].strip()[:64]
            # The form's token, kept in the session: another site cannot log a visitor in
            # under a name of its choice (login CSRF).
            sent = (form.get("csrf") or [""])[0]
            if not sent or not hmac.compare_digest(
                sent.encode(), str(session.get("csrf", "")).encode()
            ):
                return HTMLResponse(
                    _page(
                        "Log in",
                        "<h1>Expired form</h1><p><a href=/login>"
                        "Reload the login page</a> and try again.</p>",
                    ),
                    status_code=403,
                )
            if name:
                session.regenerate()  # a new id on login: defeats session fixation
                session["user"] = name
                return RedirectResponse("/", status_code=303)
        csrf = session.setdefault("csrf", secrets.token_urlsafe(16))
        body = f"""<h1>Log in</h1><form method=post><input type=hidden name=csrf value={csrf}>
<input name=user placeholder="your name" autofocus required maxlength=64> <button>Log in</button>
</form>
<form method=post action=/logout><button>Log out</button></form>"""
        return HTMLResponse(_page("Log in", body))

    async def logout(request: Request) -> Response:
        get_session(request).destroy()
        return RedirectResponse("/", status_code=303)

    async def me(request: Request) -> Response:
        session = get_session(request)
        if "user" not in session:
            return JSONResponse({"error": "not logged in"}, status_code=401)
        return JSONResponse({"user": session["user"], "views": session.get("count", 0), "pid": pid})

    store = AsyncRedisStore(url=redis_url)
    routes: list[Any] = [
        Route("/", counter),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/api/me", me),
    ]
    try:
        from .dashboard import create_dashboard
    except ImportError:  # pragma: no cover - the dashboard ships with the package
        pass
    else:
        routes.append(Mount("/_sessions", create_dashboard(store, token=dashboard_token(secret))))
    app = Starlette(routes=routes)
    app.add_middleware(SessionMiddleware, store=store, secret=secret)
    return app


def create_app_from_env() -> Any:
    """The app for uvicorn's worker processes, configured through the environment by `run`."""
    return create_app(os.environ[_ENV_URL], os.environ[_ENV_SECRET], os.environ.get(_ENV_WHERE))


def _secret(data_dir: Path) -> str:
    # A stable secret per data dir, so cookies stay valid across restarts of the demo; one
    # planted by another user is refused (UnsafePathError).
    from ._private_files import secret_file

    return secret_file(data_dir / "demo-secret")


def run(
    *,
    url: str | None,
    data_dir: str | os.PathLike[str] = DEFAULT_DIR,
    port: int = 8000,
    workers: int = 2,
) -> int:
    """Run the demo until Ctrl-C; starts (and then stops) the local server when `url` is None.

    While it runs, the server's URL is in ``<data_dir>/server.url`` so that the other
    ``redis-sessions`` commands find it.
    """
    import uvicorn

    from ._private_files import UnsafePathError, private_dir, write_private
    from .server import URL_FILE, dev_server

    directory = Path(data_dir).resolve()
    server = None
    url_file = directory / URL_FILE
    try:
        private_dir(directory)
        secret = _secret(directory)
        if url is None:
            # The data dir's password (server.password): any local user can reach the port.
            server = dev_server(directory, appendonly=True, appendfsync="everysec").start()
    except UnsafePathError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if server is not None:
        url = server.url
        write_private(url_file, url + "\n")
        where = f"{redact_url(url)} (pid {server.pid}, data in {directory}, AOF everysec)"
        print(f"Local server pid {server.pid}, data in {directory} (AOF, everysec)")
    else:
        assert url is not None
        where = redact_url(url)
    os.environ.update({_ENV_URL: url, _ENV_SECRET: secret, _ENV_WHERE: where})
    try:
        print(f"Demo at http://127.0.0.1:{port}/  ({workers} workers; Ctrl-C to stop)", flush=True)
        print(
            f"Sessions dashboard: http://127.0.0.1:{port}/_sessions/?token="
            f"{dashboard_token(os.environ[_ENV_SECRET])}",
            flush=True,
        )
        uvicorn.run(
            "redis_sessions.demo:create_app_from_env",
            factory=True,
            host="127.0.0.1",
            port=port,
            workers=workers,
            log_level="warning",
        )
    finally:
        if server is not None:
            url_file.unlink(missing_ok=True)
            server.stop(cleanup=False)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m redis_sessions.demo [--port 8000] [--workers 2] [--dir DIR] [--url URL]``."""
    parser = argparse.ArgumentParser(prog="redis-sessions-demo", description=__doc__)
    parser.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--dir", default=DEFAULT_DIR, help="data directory")
    parser.add_argument("--url", default=None, help="use this Redis instead of a local one")
    args = parser.parse_args(argv)
    return run(url=args.url, data_dir=args.dir, port=args.port, workers=args.workers)


if __name__ == "__main__":
    raise SystemExit(main())
