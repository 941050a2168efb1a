"""A web dashboard of the stored sessions: list and search, detail, delete, statistics.

An ASGI app (Starlette) to serve alone or mount in any ASGI app::

    from starlette.routing import Mount
    from redis_sessions.dashboard import create_dashboard

    routes = [..., Mount("/_sessions", create_dashboard(store, token=TOKEN))]

Without a token it answers loopback clients only; call `check_bind` before serving it on an
address of your choice. Pages are plain HTML with inline CSS and SVG: no script, nothing
loaded from elsewhere.
"""

from ._app import create_dashboard
from ._security import check_bind

__all__ = ["check_bind", "create_dashboard"]
