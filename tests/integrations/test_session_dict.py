"""The session is a dict: every dict method through a real adapter and a real server.

Each mutating method's change reaches Redis; reads cost no write; nested changes in values
handed out are saved; json, Starlette's JSONResponse, FastAPI and Flask serialize it as is.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import flask
import msgpack
import orjson
import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from redis_sessions import AsyncRedisStore, RedisStore, Session, connect, connect_async
from redis_sessions.asgi import SessionMiddleware
from redis_sessions.asgi import get_session as get_asgi_session
from redis_sessions.engine import handle_for
from redis_sessions.fastapi import SessionDep
from redis_sessions.flask import RedisSessions, get_session
from tests.support.servers import RoundTrips

SECRET = "session-dict-secret-0123456789"


def closing(store: AsyncRedisStore) -> Any:
    """A lifespan closing the store's connections on the TestClient's own event loop."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        yield
        await store.aclose()

    return lifespan


START = {"a": 1, "b": [1], "c": {"x": 1}}


def stored(client: redis.Redis, cookie: str) -> dict[str, Any]:
    """The user data Redis holds for the session of a cookie value, decoded."""
    key = f"sess:{{{handle_for(cookie.split('.', 1)[0])}}}"
    fields = cast("dict[bytes, bytes]", client.hgetall(key))  # decode_responses=False
    return {k.decode(): json.loads(v) for k, v in fields.items() if k[:1] != b"$"}


def _popitem(s: Session) -> Any:
    return list(s.popitem())


def _ior(s: Session) -> None:
    s |= {"d": 4}


def _nested_values(s: Session) -> None:
    for value in s.values():
        if isinstance(value, list):
            value.append(2)


def _nested_items(s: Session) -> None:
    for key, value in s.items():
        if key == "c":
            value["y"] = 2


def _nested_reversed_items(s: Session) -> None:
    for key, value in reversed(s.items()):
        if key == "b":
            value.append(2)


# name -> (operation, the stored data it leaves; None: unchanged, no write at all)
MUTATIONS: dict[str, tuple[Callable[[Session], Any], dict[str, Any] | None]] = {
    "setitem": (lambda s: s.__setitem__("d", 4), {**START, "d": 4}),
    "setitem-replace": (lambda s: s.__setitem__("a", 5), {**START, "a": 5}),
    "delitem": (lambda s: s.__delitem__("a"), {"b": [1], "c": {"x": 1}}),
    "pop": (lambda s: s.pop("a"), {"b": [1], "c": {"x": 1}}),
    "pop-missing-default": (lambda s: s.pop("zz", 0), None),
    "popitem": (_popitem, {"a": 1, "b": [1]}),  # the last key inserted, as dict
    "setdefault-new": (lambda s: s.setdefault("d", 4), {**START, "d": 4}),
    "setdefault-present": (lambda s: s.setdefault("a", 9), None),
    "update-mapping": (lambda s: s.update({"a": 2, "d": 4}), {**START, "a": 2, "d": 4}),
    "update-pairs": (lambda s: s.update([("a", 2)]), {**START, "a": 2}),
    "update-kwargs": (lambda s: s.update(a=2, d=4), {**START, "a": 2, "d": 4}),
    "ior": (_ior, {**START, "d": 4}),
    "clear": (lambda s: s.clear(), {}),
    "incr": (lambda s: s.incr("a", 2), {**START, "a": 3}),
    "nested-getitem": (lambda s: s["b"].append(2), {**START, "b": [1, 2]}),
    "nested-get": (lambda s: s.get("c").update(y=2), {**START, "c": {"x": 1, "y": 2}}),
    "nested-values": (_nested_values, {**START, "b": [1, 2]}),
    "nested-items": (_nested_items, {**START, "c": {"x": 1, "y": 2}}),
    "nested-reversed-items": (_nested_reversed_items, {**START, "b": [1, 2]}),
    "nested-copy": (lambda s: s.copy()["b"].append(2), {**START, "b": [1, 2]}),
    "nested-dict-of": (lambda s: dict(s)["b"].append(2), {**START, "b": [1, 2]}),
    "nested-unpacked": (lambda s: {**s}["c"].update(y=2), {**START, "c": {"x": 1, "y": 2}}),
    # Reads: no write, whatever they touch.
    "read-getitem": (lambda s: s["a"], None),
    "read-get": (lambda s: [s.get("b"), s.get("zz")], None),
    "read-len-in-iter": (lambda s: [len(s), "a" in s, list(s), list(reversed(s))], None),
    "read-views": (lambda s: [list(s.keys()), list(s.values()), list(s.items())], None),
    "read-eq": (lambda s: [s == START, s != START], None),
    "read-copies": (lambda s: [s.copy(), dict(s), {**s}, copy.copy(s), copy.deepcopy(s)], None),
    "read-or": (lambda s: [s | {"d": 4}, {"d": 4} | s], None),
    "read-json": (lambda s: [json.dumps(s), json.dumps(s, indent=1, sort_keys=True)], None),
    "read-orjson-msgpack": (lambda s: [orjson.dumps(s).decode(), msgpack.packb(s).hex()], None),
    "read-reduce": (lambda s: s.__reduce_ex__(5), None),  # what pickle and copy use
    "read-fromkeys": (lambda s: s.fromkeys(["k"], 0), None),
}


def _starlette_app(store: AsyncRedisStore) -> Starlette:
    async def seed(request: Request) -> JSONResponse:
        request.session.update(START)
        return JSONResponse({})

    async def op(request: Request) -> JSONResponse:
        func = MUTATIONS[request.path_params["name"]][0]
        result = func(get_asgi_session(request))
        # The session itself, serialized by Starlette's JSONResponse (json's C encoder).
        return JSONResponse({"result": repr(result), "session": request.session})

    app = Starlette(routes=[Route("/seed", seed), Route("/op/{name}", op)], lifespan=closing(store))
    app.add_middleware(SessionMiddleware, store=store, secret=SECRET)
    return app


@pytest.fixture
def store(redis_url: str, clean_redis: redis.Redis) -> AsyncRedisStore:
    return AsyncRedisStore(connect_async(redis_url))


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_every_dict_method_is_tracked_through_the_asgi_middleware(
    name: str, store: AsyncRedisStore, clean_redis: redis.Redis
) -> None:
    expected = MUTATIONS[name][1]
    counted = RoundTrips(store)
    with TestClient(_starlette_app(store)) as client:
        client.get("/seed")
        cookie = client.cookies["session"]
        assert stored(clean_redis, cookie) == START
        counted.take()
        response = client.get(f"/op/{name}")
        assert response.status_code == 200, response.text
        after = stored(clean_redis, cookie)
        # What the response serialized is what the request left in the session.
        assert response.json()["session"] == (START if expected is None else expected)
        if expected is None:
            assert counted.take() == 1  # the load only: a read writes nothing
            assert after == START
        else:
            assert counted.take() == 2  # the load and the one save
            assert after == expected


def test_the_session_is_a_dict_that_json_and_jsonresponse_take(
    store: AsyncRedisStore,
) -> None:
    seen: dict[str, Any] = {}

    async def view(request: Request) -> JSONResponse:
        request.session["user"] = "ada"
        seen["isinstance"] = isinstance(request.session, dict)
        seen["dumps"] = json.loads(json.dumps(request.session))
        return JSONResponse({"session": request.session})

    app = Starlette(routes=[Route("/", view)], lifespan=closing(store))
    app.add_middleware(SessionMiddleware, store=store, secret=SECRET)
    with TestClient(app) as client:
        assert client.get("/").json() == {"session": {"user": "ada"}}
    assert seen == {"isinstance": True, "dumps": {"user": "ada"}}


def test_fastapi_returns_and_wraps_the_session_as_json(store: AsyncRedisStore) -> None:
    app = FastAPI(lifespan=closing(store))
    app.add_middleware(SessionMiddleware, store=store, secret=SECRET, lazy=True)

    @app.get("/returned")
    async def returned(session: SessionDep) -> Any:
        session["n"] = session.get("n", 0) + 1
        return session  # FastAPI's jsonable_encoder

    @app.get("/wrapped")
    async def wrapped(request: Request, session: SessionDep) -> Any:
        return JSONResponse(
            {
                "session": request.session,
                "same": request.session is session,
                "dumps": json.dumps(session),
            }
        )

    with TestClient(app) as client:
        assert client.get("/returned").json() == {"n": 1}
        assert client.get("/wrapped").json() == {
            "session": {"n": 1},
            "same": True,
            "dumps": '{"n": 1}',
        }


def test_a_lazy_session_not_loaded_yet_looks_empty_to_c_readers(
    store: AsyncRedisStore,
) -> None:
    # The documented trap: json's C encoder and orjson read the dict's storage, which a lazy
    # session fills only on its load; anything that goes through its methods loads it.
    seen: dict[str, Any] = {}

    async def seed(request: Request) -> JSONResponse:
        session = get_asgi_session(request)
        await session.aload()
        session["user"] = "ada"
        return JSONResponse({})

    async def peek(request: Request) -> JSONResponse:
        session = get_asgi_session(request)
        seen["before"] = [json.dumps(session), orjson.dumps(session).decode()]
        await session.aload()
        seen["after"] = [json.dumps(session), orjson.dumps(session).decode()]
        return JSONResponse({})

    app = Starlette(routes=[Route("/seed", seed), Route("/peek", peek)], lifespan=closing(store))
    app.add_middleware(SessionMiddleware, store=store, secret=SECRET, lazy=True)
    with TestClient(app) as client:
        client.get("/seed")
        client.get("/peek")
    assert seen == {"before": ["{}", "{}"], "after": ['{"user": "ada"}', '{"user":"ada"}']}


# -- Flask (the WSGI binding: the session loads on first access) --------------------------


@pytest.fixture
def flask_app(redis_url: str, clean_redis: redis.Redis) -> flask.Flask:
    app = flask.Flask(__name__)
    app.secret_key = SECRET
    RedisSessions(app, store=RedisStore(connect(redis_url)))

    @app.get("/seed")
    def seed() -> Any:
        flask.session.update(START)
        return {}

    @app.get("/op/<name>")
    def op(name: str) -> Any:
        MUTATIONS[name][0](get_session())
        return flask.jsonify(get_session())

    @app.get("/json")
    def as_json() -> Any:
        session = get_session()
        # Not loaded yet (Flask loads on first access): json's C encoder sees empty storage.
        before = json.dumps(session)
        # dict() goes through keys(), which loads; flask.session itself is werkzeug's proxy,
        # which json cannot serialize (with Flask's own sessions too).
        proxy = flask.jsonify(dict(flask.session)).get_json()
        return {
            "isinstance": isinstance(session, dict),
            "before": before,
            "proxy": proxy,
            "dumps": json.dumps(session),
            "jsonify": flask.jsonify(session).get_json(),
        }

    @app.get("/returned")
    def returned() -> Any:
        get_session().get("a")  # loads it
        return get_session()  # Flask jsonifies a dict returned by a view

    return app


@pytest.mark.parametrize(
    "name", [n for n in MUTATIONS if not n.startswith("read-")] + ["read-json", "read-copies"]
)
def test_every_dict_method_is_tracked_through_flask(
    name: str, flask_app: flask.Flask, clean_redis: redis.Redis
) -> None:
    expected = MUTATIONS[name][1]
    client = flask_app.test_client()
    client.get("/seed")
    session_cookie = client.get_cookie("session")
    assert session_cookie is not None
    cookie = session_cookie.value
    response = client.get(f"/op/{name}")
    assert response.status_code == 200, response.text
    assert response.get_json() == (START if expected is None else expected)
    assert stored(clean_redis, cookie) == (START if expected is None else expected)


def test_flask_serializes_the_session_it_hands_out(flask_app: flask.Flask) -> None:
    client = flask_app.test_client()
    client.get("/seed")
    assert client.get("/json").get_json() == {
        "isinstance": True,
        "before": "{}",
        "proxy": START,
        "dumps": json.dumps(START),
        "jsonify": START,
    }
    assert client.get("/returned").get_json() == START
