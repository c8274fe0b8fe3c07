"""`character train ...`: the group; each subcommand lives in its own `train_<sub>.py` module that
attaches itself to `train_app` at import time."""

from __future__ import annotations

import typer

from character.commands import import_optional

train_app = typer.Typer(help="Train adapters: DPO and SFT.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    for sub in (
        "train_dpo",
        "train_sft",
    ):
        import_optional(sub)
    app.add_typer(train_app, name="train")
