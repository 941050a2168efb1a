"""The dashboard in a real browser: find a logged-in user's session, delete it, and the user's
next request is logged out. With ``REDIS_SESSIONS_SCREENSHOT=1`` (``make screenshot``) it also
saves docs/dashboard.png for the README; a plain run leaves the checkout untouched.

Drives a system Chrome/Chromium with Playwright: ``$REDIS_SESSIONS_CHROMIUM``, else
/usr/bin/chromium, else chromium, chromium-browser or google-chrome on PATH. Without one the
test skips (fails under CI, where it must run) with the install hint.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from redis_sessions import AsyncRedisStore, RedisStore
from redis_sessions.asgi import SessionMiddleware, get_session
from redis_sessions.dashboard import create_dashboard
from redis_sessions.engine import handle_for, new_id
from redis_sessions.server import free_port
from tests.dashboard.dashkit import TOKEN
from tests.support.servers import wait_until

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
SECRET = "browser-test-secret-0123456789abcdef"
INSTALL_HINT = "apt-get install chromium (Debian/Ubuntu), or set REDIS_SESSIONS_CHROMIUM"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def find_chromium() -> str | None:
    """The browser to drive, or None when there is none on this machine."""
    configured = os.environ.get("REDIS_SESSIONS_CHROMIUM")
    if configured:
        if not (os.path.isfile(configured) and os.access(configured, os.X_OK)):
            pytest.fail(f"REDIS_SESSIONS_CHROMIUM={configured!r} is not an executable file")
        return configured
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def demo_app(url: str) -> Starlette:
    """An app using the library as the README says, with the dashboard at /_sessions."""
    store = AsyncRedisStore(url=url)

    async def login(request: Request) -> JSONResponse:
        session = get_session(request)
        session.regenerate()  # a new id at login: no session fixation
        session["user"] = request.query_params["user"]
        return JSONResponse({"user": session["user"]})

    async def me(request: Request) -> JSONResponse:
        user = request.session.get("user")
        if user is None:
            return JSONResponse({"error": "not logged in"}, status_code=401)
        return JSONResponse({"user": user})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await store.aclose()

    return Starlette(
        routes=[
            Route("/login", login),
            Route("/me", me),
            Mount("/_sessions", create_dashboard(store, token=TOKEN, refresh=30)),
        ],
        middleware=[Middleware(SessionMiddleware, store=store, secret=SECRET)],
        lifespan=lifespan,
    )


@contextlib.contextmanager
def uvicorn_thread(app: Starlette) -> Iterator[str]:
    """Serve `app` with uvicorn on a free loopback port in a thread; yields the base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="uvicorn-dashboard", daemon=True)
    thread.start()
    try:
        wait_until(
            lambda: server.started or not thread.is_alive(), 10, message="uvicorn did not start"
        )
        assert server.started, "uvicorn exited at startup"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        assert not thread.is_alive(), "uvicorn did not stop"


def seed_screenshot_sessions(url: str, client: redis.Redis) -> None:
    """Sessions of various ages, TTLs and users, so the list looks like a real one."""
    minute, hour, day = 60_000, 3_600_000, 86_400_000
    samples: list[tuple[dict[str, Any], int, int]] = [
        (
            {"user": {"name": "erin@example.com", "roles": ["admin"]}, "theme": "dark"},
            3 * hour,
            21 * hour,
        ),
        ({"user": "frank", "cart": [{"sku": "A-1001", "qty": 2}]}, 26 * hour, 2 * hour),
        ({"visits": 3}, 5 * minute, 23 * hour),
        ({"user": "grace", "locale": "fr-FR"}, 4 * day, 6 * day),
        ({"visits": 1, "utm": "newsletter"}, 40 * minute, 50 * minute),
        ({"user": "heidi", "csrf": "x", "flags": {"beta": True}}, 12 * day, 12 * hour),
    ]
    store = RedisStore(url=url)
    try:
        now = int(client.time()[0]) * 1000  # the same server as the store's
        for data, age_ms, ttl_ms in samples:
            handle = handle_for(new_id())
            store.set(handle, data, ttl=ttl_ms / 1000)
            client.hset(store.layout.key(handle), "$c", str(now - age_ms))
    finally:
        store.close()


def test_dashboard_in_a_browser_logs_a_user_out(
    redis_url: str, clean_redis: redis.Redis, tmp_path: Path
) -> None:
    executable = find_chromium()
    if executable is None:
        message = f"no Chrome/Chromium found for the browser test; install one: {INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    seed_screenshot_sessions(redis_url, clean_redis)
    with (
        uvicorn_thread(demo_app(redis_url)) as base,
        httpx.Client(base_url=base, timeout=5) as dora,
        httpx.Client(base_url=base, timeout=5) as others,
    ):
        for name in ("alice", "bob", "carol"):
            others.cookies.clear()
            assert others.get("/login", params={"user": name}).status_code == 200
        assert dora.get("/login", params={"user": "dora"}).status_code == 200
        assert dora.get("/me").json() == {"user": "dora"}

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=executable, headless=True, args=LAUNCH_ARGS
            )
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 720})
                problems: list[str] = []
                page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: problems.append(str(e)))

                # The token visit sets the cookie and drops the token from the address.
                page.goto(f"{base}/_sessions/?token={TOKEN}")
                assert page.url == f"{base}/_sessions/"
                assert page.locator("tbody tr").count() == 10
                shot = (
                    SCREENSHOT
                    if os.environ.get("REDIS_SESSIONS_SCREENSHOT")
                    else (tmp_path / "dashboard.png")
                )
                page.screenshot(path=str(shot), full_page=True)
                assert shot.read_bytes().startswith(b"\x89PNG")

                page.fill("input[name=user]", "dora")
                page.click("button[type=submit]")
                page.wait_for_url("**/_sessions/?*user=dora*")
                rows = page.locator("tbody tr")
                assert rows.count() == 1 and "dora" in rows.inner_text()
                rows.locator("a").click()
                page.wait_for_url("**/_sessions/s/*")
                assert "dora" in page.locator("dl").inner_text()

                page.click("text=Delete session")
                page.wait_for_url("**/_sessions/?flash=deleted*")
                assert "deleted" in page.locator(".flash").inner_text()
                page.fill("input[name=user]", "dora")
                page.click("button[type=submit]")
                page.wait_for_url("**/_sessions/?*user=dora*")
                assert page.locator("tbody tr").count() == 0
                assert "No sessions match." in page.content()

                page.goto(f"{base}/_sessions/stats")
                assert page.locator("svg").count() == 3
                assert not problems, problems  # e.g. a CSP violation
                print(f"browser: {browser.version} ({executable})")
            finally:
                browser.close()

        # Deleted from the dashboard: the user's next request is logged out.
        assert dora.get("/me").status_code == 401
        assert others.get("/me").status_code == 200
