"""`make demo`: a per-session visit counter on the embedded, persistent local server.

Run ``python -m redis_sessions.demo [--port 8000] [--dir .redis-sessions-data]``. The server
keeps its data (AOF) and the signing secret in the data directory, so the count survives a
restart of the demo. ``--url`` uses an existing Redis instead.
"""

from __future__ import annotations

import argparse
import html
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .asgi import SessionMiddleware, get_session
from .store._async import AsyncRedisStore

__all__ = ["create_app", "main"]

PAGE = """<!doctype html><meta charset="utf-8"><title>redis-sessions demo</title>
<body style="font-family: system-ui; max-width: 40em; margin: 3em auto">
<h1>You have visited this page {count} time{s}.</h1>
<p>Your session lives in Redis at <code>{where}</code>, not in the cookie: the cookie only
carries a signed, random id. Reload to count; restart the demo and the count goes on.</p>
<form method="post" action="/reset"><button>Forget me (destroy the session)</button></form>
</body>"""


def create_app(redis_url: str, secret: str) -> Any:
    """The demo ASGI app: Starlette with the session middleware, as the README shows."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, RedirectResponse
    from starlette.routing import Route

    async def counter(request: Request) -> HTMLResponse:
        count = request.session.get("count", 0) + 1
        request.session["count"] = count
        page = PAGE.format(count=count, s="" if count == 1 else "s", where=html.escape(where))
        return HTMLResponse(page)

    async def reset(request: Request) -> RedirectResponse:
        get_session(request).destroy()
        return RedirectResponse("/", status_code=303)

    where = redis_url.split("@")[-1]
    app = Starlette(routes=[Route("/", counter), Route("/reset", reset, methods=["POST"])])
    app.add_middleware(SessionMiddleware, store=AsyncRedisStore(url=redis_url),  # type: ignore[arg-type]
                       secret=secret)
    return app


def _secret(data_dir: Path) -> str:
    # A stable secret per data dir, so cookies stay valid across restarts of the demo.
    path = data_dir / "demo-secret"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo until Ctrl-C; stops the server it started."""
    import uvicorn

    from .server import LocalServer

    parser = argparse.ArgumentParser(prog="redis-sessions-demo", description=__doc__)
    parser.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    parser.add_argument("--dir", default=".redis-sessions-data", help="data directory")
    parser.add_argument("--url", default=None, help="use this Redis instead of a local one")
    args = parser.parse_args(argv)
    data_dir = Path(args.dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    server = None
    url = args.url
    if url is None:
        server = LocalServer(data_dir=data_dir, appendonly=True, appendfsync="everysec").start()
        url = server.url
        print(f"Local server pid {server.pid}, data in {data_dir} (AOF, everysec)")
    try:
        print(f"Demo at http://127.0.0.1:{args.port}/  (Ctrl-C to stop)", flush=True)
        uvicorn.run(create_app(url, _secret(data_dir)), host="127.0.0.1", port=args.port,
                    log_level="warning")
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
