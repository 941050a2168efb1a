"""A web dashboard of the stored sessions: list and search, detail, delete, statistics.

An ASGI app (Starlette) to mount in any ASGI app, or to serve alone with `standalone`:

    from starlette.routing import Mount
    from redis_sessions.dashboard import create_dashboard

    routes = [..., Mount("/_sessions", create_dashboard(store, token=TOKEN))]

A token is required: token-less access is an explicit opt-in (``no_token=True``) for loopback
clients only, never through a proxy; call `check_bind` before serving it on an address of your
choice. Pages are plain HTML with inline CSS and SVG: no script, nothing loaded from elsewhere.
"""

from ._app import STANDALONE_PATH, create_dashboard, standalone
from ._security import check_bind

__all__ = ["STANDALONE_PATH", "check_bind", "create_dashboard", "standalone"]
