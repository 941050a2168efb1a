"""Flask alone under gunicorn, no session: the WSGI side's ceiling on this machine."""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)


@app.get("/read")
@app.get("/incr")
@app.get("/untouched")
def ok() -> str:
    return "0"
