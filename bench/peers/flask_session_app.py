"""Flask-Session's redis backend under Flask: the bench routes.

``SESSION_REFRESH_EACH_REQUEST`` is off to match ours (no rolling cookie): Flask's default would
write the session and re-send the cookie on every response, ``/untouched`` included.
"""

from __future__ import annotations

import os
from datetime import timedelta

import redis
from flask import Flask, session
from flask_session import Session

app = Flask(__name__)
app.config.update(
    SESSION_TYPE="redis",
    SESSION_REDIS=redis.Redis.from_url(os.environ["REDIS_URL"]),
    PERMANENT_SESSION_LIFETIME=timedelta(days=1),
    SESSION_REFRESH_EACH_REQUEST=False,
)
Session(app)


@app.get("/read")
def read() -> str:
    return str(session.get("n", 0))


@app.get("/incr")
def incr() -> str:
    session["n"] = session.get("n", 0) + 1
    return str(session["n"])


@app.get("/untouched")
def untouched() -> str:
    return "ok"
