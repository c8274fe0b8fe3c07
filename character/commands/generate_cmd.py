"""`character generate ...`: the group; each subcommand lives in its own `generate_<sub>.py` module that
attaches itself to `generate_app` at import time."""

from __future__ import annotations

import typer

from character.commands import import_optional

generate_app = typer.Typer(help="Generate data: prompts, DPO pairs, introspection.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    for sub in (
        "generate_prompts",
        "generate_dpo",
        "generate_introspection",
    ):
        import_optional(sub)
    app.add_typer(generate_app, name="generate")
