"""`character data ...`: the group; each subcommand lives in its own `data_<sub>.py` module that
attaches itself to `data_app` at import time."""

from __future__ import annotations

import typer

from character.commands import import_optional

data_app = typer.Typer(help="Inspect and clean JSONL data.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    for sub in (
        "data_clean",
        "data_audit",
    ):
        import_optional(sub)
    app.add_typer(data_app, name="data")
