"""redis-sessions' Flask integration: the bench routes (see registry.py)."""

from __future__ import annotations

import os

from flask import Flask, session

from redis_sessions import RedisStore
from redis_sessions.flask import RedisSessions, get_session

app = Flask(__name__)
app.secret_key = "bench-secret-0123456789abcdef0123"
RedisSessions(app, store=RedisStore(url=os.environ["REDIS_URL"]))


@app.get("/read")
def read() -> str:
    return str(session.get("n", 0))


@app.get("/incr")
def incr() -> str:
    session["n"] = session.get("n", 0) + 1
    return str(session["n"])


@app.get("/atomic")
def atomic() -> str:
    return str(get_session().incr("n"))


@app.get("/untouched")
def untouched() -> str:
    return "ok"
