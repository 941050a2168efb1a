"""The commands that run something in the foreground: ``demo``, ``server``, ``dashboard``.

Their modules (uvicorn, starlette, the dashboard) are imported inside the commands, so that
``redis-sessions --help`` and the data commands stay fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

from ._common import DEFAULT_DATA_DIR, CliError, current_settings, safe_url

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from ..store._async import AsyncRedisStore

__all__ = ["dashboard_command", "demo_command", "server_command"]

_DASHBOARD_TOKEN_ENV = "REDIS_SESSIONS_DASHBOARD_TOKEN"


@click.command("demo")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="HTTP port of the demo app.",
)
@click.option(
    "--workers",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="uvicorn worker processes.",
)
@click.option(
    "--dir",
    "data_dir",
    default=DEFAULT_DATA_DIR,
    show_default=True,
    type=click.Path(file_okay=False),
    help="Data directory (AOF, secret, server.url).",
)
@click.pass_context
def demo_command(ctx: click.Context, port: int, workers: int, data_dir: str) -> None:
    """Run the demo app (visit counter, login) on the embedded persistent server.

    With the global --url, it uses that Redis instead (REDIS_URL is not consulted). Ctrl-C
    stops the app and the server it started.

    \b
    Example:
      redis-sessions demo --workers 4
    """
    from .. import demo

    url = current_settings().url_option
    click.echo(f"data directory: {Path(data_dir).resolve()}")
    ctx.exit(demo.run(url=url, data_dir=data_dir, port=port, workers=workers))


@click.command("server", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--port",
    default=None,
    type=int,
    metavar="PORT",
    help="TCP port, 1-65535 [default: a free one].",
)
@click.option(
    "--dir",
    "data_dir",
    default=DEFAULT_DATA_DIR,
    show_default=True,
    type=click.Path(file_okay=False),
    help="Data directory (AOF, log), kept.",
)
@click.option(
    "--appendfsync",
    default="everysec",
    show_default=True,
    type=click.Choice(["always", "everysec", "no"]),
    help="AOF fsync policy.",
)
@click.option(
    "--unix-socket", is_flag=True, help="Also listen on a unix socket in the data directory."
)
@click.pass_context
def server_command(
    ctx: click.Context,
    port: int | None,
    data_dir: str,
    appendfsync: Literal["always", "everysec", "no"],
    unix_socket: bool,
) -> None:
    """Run a local Redis/Valkey server in the foreground (prints its URL; Ctrl-C stops it).

    Also runs as python -m redis_sessions.server, with the same options.

    \b
    Example:
      redis-sessions server --port 6390
    """
    from .. import _devserver

    try:
        code = _devserver.run(data_dir, port=port, appendfsync=appendfsync, unix_socket=unix_socket)
    except ValueError as exc:  # LocalServer's own checks (the port range)
        raise click.UsageError(str(exc)) from None
    ctx.exit(code)


@click.command("dashboard")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port", default=8001, show_default=True, type=click.IntRange(1, 65535), help="HTTP port."
)
@click.option(
    "--token",
    default=None,
    envvar=_DASHBOARD_TOKEN_ENV,
    metavar="TOKEN",
    help=f"Access token, 16+ characters (env {_DASHBOARD_TOKEN_ENV}: on the command "
    "line it shows in ps) [default: a new one, printed in the URL].",
)
@click.option(
    "--token-file",
    default=None,
    type=click.Path(dir_okay=False, exists=True),
    help="Read the access token from this file.",
)
@click.option(
    "--no-token", is_flag=True, help="No token: loopback clients only, never through a proxy."
)
@click.option(
    "--secure-cookies",
    is_flag=True,
    help="Mark the cookies Secure (behind a proxy that terminates TLS).",
)
@click.pass_context
def dashboard_command(
    ctx: click.Context,
    host: str,
    port: int,
    token: str | None,
    token_file: str | None,
    no_token: bool,
    secure_cookies: bool,
) -> None:
    """Serve the sessions dashboard (list, search, detail, delete, stats) at /_dashboard/.

    Without a token it makes one and prints the URL to open (it holds the token once: the
    dashboard swaps it for a cookie and drops it from the address).

    \b
    Example:
      export REDIS_SESSIONS_DASHBOARD_TOKEN="$(openssl rand -base64 32)"
      redis-sessions dashboard --host 0.0.0.0
    """
    import secrets

    from click.core import ParameterSource

    from .. import dashboard
    from ..store._async import AsyncRedisStore

    from_command_line = ctx.get_parameter_source("token") is ParameterSource.COMMANDLINE
    if sum((from_command_line, token_file is not None, no_token)) > 1:
        raise click.UsageError("--token, --token-file and --no-token exclude each other")
    if token_file is not None:
        token = Path(token_file).read_text(encoding="utf-8").strip()
    elif no_token:
        token = None
    elif from_command_line:
        click.echo(
            f"warning: --token shows in the process list (ps) of every user of this "
            f"machine: set {_DASHBOARD_TOKEN_ENV} or use --token-file",
            err=True,
        )
    generated = not no_token and not token
    if generated:
        token = secrets.token_urlsafe(32)
    try:
        dashboard.check_bind(host, token)
    except ValueError as exc:
        raise _RefusedBind(str(exc)) from None
    settings = current_settings()
    try:
        store = AsyncRedisStore(url=settings.url, prefix=settings.prefix)
    except ValueError as exc:
        raise CliError(f"invalid Redis URL {safe_url(settings.url)!r}: {exc}") from None
    app = dashboard.create_dashboard(
        store,
        token=token,
        no_token=no_token,
        secure_cookies=True if secure_cookies else None,
        user_field=settings.user_field,
    )
    served = _ClosesStore(dashboard.standalone(app), store)
    import uvicorn

    shown = f"[{host}]" if ":" in host else host
    address = f"http://{shown}:{port}{dashboard.STANDALONE_PATH}/"
    click.echo(
        f"dashboard at {address} for {safe_url(settings.url)} "
        f"(prefix {settings.prefix!r}); Ctrl-C to stop"
    )
    if generated:
        click.echo(
            f"open it with its access token (made for this run):\n    {address}?token={token}"
        )
    uvicorn.run(served, host=host, port=port, log_level="warning")


class _RefusedBind(CliError):
    """The dashboard's bind check failed: a usage problem, exit status 2."""

    exit_code = 2


class _ClosesStore:
    """ASGI wrapper: closes the dashboard's store when the server shuts down (the dashboard
    leaves the store to its owner, here the command)."""

    def __init__(self, app: ASGIApp, store: AsyncRedisStore) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await self.store.aclose()
            await send(message)

        await self.app(scope, receive, send_closing)
