"""One asyncio store, many event loops: the way apps and their tests really run.

FastAPI's docs put ``client = TestClient(app)`` at module level: without ``with``, every
request runs in a fresh event loop. ``asyncio.run`` called twice around one store, several
``TestClient``s for one app, a loop closed by hand: each needs the store to use connections of
the calling loop, never those of a loop that is gone (redis_sessions._loops). Every topology
`connect_async` builds is covered, on real servers; warnings are errors, so an unclosed socket
fails the test (gc.collect() makes it show here, not in a later test).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from redis_sessions import AsyncRedisStore, connect_async
from redis_sessions.asgi import SessionMiddleware
from redis_sessions.fastapi import SessionDep

SECRET = "s" * 32
TOPOLOGIES = ["tcp", "unix", "tls", "sentinel", "cluster"]


@pytest.fixture(params=TOPOLOGIES)
def url(request: pytest.FixtureRequest) -> str:
    """A URL of each topology, its data emptied first."""
    kind = request.param
    if kind == "sentinel":
        group = request.getfixturevalue("sentinel_group")
        group.flush()
        return str(group.url())
    if kind == "cluster":
        cluster = request.getfixturevalue("redis_cluster")
        cluster.flush()
        return str(cluster.url)
    request.getfixturevalue("clean_redis")
    if kind == "unix":
        return str(request.getfixturevalue("redis_server").unix_url)
    if kind == "tls":
        return str(request.getfixturevalue("tls_url"))
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture
def store(url: str) -> Iterator[AsyncRedisStore]:
    """One asyncio store for the whole test, closed on a loop of its own at the end."""
    built = AsyncRedisStore(url=url)
    try:
        yield built
    finally:
        asyncio.run(built.aclose())
        gc.collect()  # an unclosed socket warns now, in this test


def fastapi_app(store: AsyncRedisStore) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, store=store, secret=SECRET, lazy=True)

    @app.get("/views")
    async def views(session: SessionDep) -> dict[str, int]:
        session["views"] = session.get("views", 0) + 1
        return {"views": session["views"]}

    return app


def starlette_app(store: AsyncRedisStore) -> Starlette:
    async def views(request: Request) -> JSONResponse:
        request.session["views"] = request.session.get("views", 0) + 1
        return JSONResponse({"views": request.session["views"]})

    app = Starlette(routes=[Route("/views", views)])
    app.add_middleware(SessionMiddleware, store=store, secret=SECRET)
    return app


def views(client: TestClient) -> int:
    response = client.get("/views")
    assert response.status_code == 200, response.text
    return int(response.json()["views"])


@pytest.mark.parametrize("build", [fastapi_app, starlette_app], ids=["fastapi", "starlette"])
def test_testclient_without_with(store: AsyncRedisStore, build: Any) -> None:
    # The docs' pattern: each request runs in a new event loop, closed after it.
    client = TestClient(build(store))
    assert [views(client) for _ in range(4)] == [1, 2, 3, 4]


@pytest.mark.parametrize("build", [fastapi_app, starlette_app], ids=["fastapi", "starlette"])
def test_testclient_with_then_again(store: AsyncRedisStore, build: Any) -> None:
    app = build(store)
    with TestClient(app) as client:  # one loop for the block
        assert [views(client), views(client)] == [1, 2]
        cookies = dict(client.cookies)
    with TestClient(app, cookies=cookies) as client:  # then another
        assert [views(client), views(client)] == [3, 4]


def test_two_clients_on_one_app(store: AsyncRedisStore) -> None:
    # Both loops alive at once, each in its own thread, used in turn.
    app = fastapi_app(store)
    with TestClient(app) as first, TestClient(app) as second:
        seen = [(views(first), views(second)) for _ in range(3)]
    assert seen == [(1, 1), (2, 2), (3, 3)]
    plain = TestClient(app)  # and one without `with` beside them
    assert views(plain) == 1


def test_repeated_asyncio_run(store: AsyncRedisStore) -> None:
    async def round_of(n: int) -> list[Any]:
        await store.set(f"h{n}", {"n": n})
        # Concurrent commands: several connections of this loop.
        return list(await asyncio.gather(*(store.get(f"h{n}") for _ in range(8))))

    for n in range(3):
        assert asyncio.run(round_of(n)) == [{"n": n}] * 8


def test_loop_closed_by_hand(store: AsyncRedisStore) -> None:
    # A loop closed without shutdown_asyncgens leaves its connections open: the next loop
    # drops them (no error, no ResourceWarning) and opens its own.
    loop = asyncio.new_event_loop()
    assert loop.run_until_complete(store.set("h", {"a": 1}))
    loop.close()
    assert asyncio.run(store.get("h")) == {"a": 1}
    gc.collect()


def test_idle_loop_then_another(store: AsyncRedisStore) -> None:
    # A loop still open but not running: its connection is closed by it when it runs again.
    idle = asyncio.new_event_loop()
    try:
        assert idle.run_until_complete(store.set("h", {"a": 1}))
        assert asyncio.run(store.get("h")) == {"a": 1}
        assert idle.run_until_complete(store.get("h")) == {"a": 1}
    finally:
        idle.run_until_complete(idle.shutdown_asyncgens())
        idle.close()


def test_clients_of_connect_async_and_the_apps_own(redis_url: str, clean_redis: Any) -> None:
    # A client built by connect_async, and a redis.asyncio client the app made itself (the
    # store binds its pool's connections to their loops too).
    for client in (connect_async(redis_url), redis.asyncio.Redis.from_url(redis_url)):
        store = AsyncRedisStore(client)
        for n in range(3):
            assert asyncio.run(store.set("h", {"n": n}))
            assert asyncio.run(store.get("h")) == {"n": n}
        asyncio.run(store.aclose())
    gc.collect()
