"""`character studio`: serve the Studio (runs, data, checkpoints, chat, constitutions) on this machine."""

from __future__ import annotations

from typing import Annotated

import typer


def studio(
    port: Annotated[
        int, typer.Option("--port", "-p", min=0, max=65535, help="TCP port (0: any free port).")
    ] = 8765,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to bind. Loopback (default) lets anyone on this machine read; any other address "
            "needs the token for every request.",
        ),
    ] = "127.0.0.1",
    token: Annotated[
        str | None,
        typer.Option("--token", help="The access token (default: a new random one, printed at start)."),
    ] = None,
) -> None:
    """A local web app over your runs: live progress, curves, data, side by side, checkpoints, chat.

    Offline: every script, style and the plotting library come from installed packages.

    It binds to 127.0.0.1 by default. Writes (promote, rollback, saving a constitution) always need the token.

    The token is printed at start, in a URL that logs the browser in.

    Example (then open the printed http://127.0.0.1:8765/?token=... URL):

      character studio --port 8765
    """
    import socket

    import uvicorn

    from character import paths
    from character.cli import console
    from character.errors import UsageError
    from character.studio import security
    from character.studio.app import create_app

    loopback = security.is_loopback(host)
    tok = token or security.new_token()
    # Bind first, so a taken port is one clear line and --port 0 can print the port it got.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise UsageError(
            f"--host {host} --port {port}: cannot bind ({e.strerror}); choose another --port"
        ) from e
    # Listening now means a client that reads the printed URL and connects at once waits in the
    # backlog while the app loads, instead of being refused.
    sock.listen(128)
    port = sock.getsockname()[1]
    app = create_app(
        token=tok,
        read_needs_token=not loopback,
        allowed_hosts=security.LOOPBACK_NAMES if loopback else None,
    )
    shown = f"[{host}]" if ":" in host else host
    console.print(f"character studio over {paths.artifacts_dir()}", markup=False, highlight=False)
    console.print(f"open: http://{shown}:{port}/?token={tok}", markup=False, highlight=False)
    if not loopback:
        console.print(
            f"bound to {host}, not loopback: every request needs the token (the URL above sets it)",
            markup=False,
        )
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[sock])


def register(app: typer.Typer) -> None:
    app.command("studio")(studio)
