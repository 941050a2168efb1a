"""The adapter of examples/custom_adapter (docs/design.md, "Writing an adapter"), written on
`redis_sessions.engine` only: a session kept on the real server, and the 503."""

from __future__ import annotations

import asyncio
from types import ModuleType

from redis_sessions import AsyncRedisStore, connect_async
from tests.integrations.asgikit import example


def _example() -> ModuleType:
    return example("custom_adapter")


def test_a_browser_keeps_its_session_through_the_custom_adapter(redis_url: str) -> None:
    app = _example()

    async def main() -> list[bytes]:
        store = AsyncRedisStore(connect_async(redis_url))
        sessions = app.Sessions(store, secret="s" * 32)
        bodies: list[bytes] = []
        cookie: str | None = None
        for _ in range(3):
            headers: dict[str, str] = {"cookie": cookie} if cookie else {}
            response = await sessions(app.Request(headers=headers), app.counter)
            bodies.append(response.body)
            sent = dict(response.headers).get("set-cookie")
            cookie = sent.split(";", 1)[0] if sent else cookie
        await store.aclose()
        return bodies

    assert asyncio.run(main()) == [b"1", b"2", b"3"]


def test_the_custom_adapter_answers_503_when_redis_is_down() -> None:
    app = _example()

    async def main():
        # A port nothing listens on: the load fails at once with StoreUnavailableError.
        store = AsyncRedisStore(connect_async("redis://127.0.0.1:1/0"))
        sessions = app.Sessions(store, secret="s" * 32)
        cookie = "session=" + sessions.engine.signer.sign("a" * 43)
        response = await sessions(app.Request(headers={"cookie": cookie}), app.counter)
        await store.aclose()
        return response

    response = asyncio.run(main())
    assert response.status == 503
    assert dict(response.headers)["retry-after"] == "5"  # the retry_after default
