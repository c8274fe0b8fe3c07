"""`character checkpoint list | show | promote NAME | rollback`: the registry and the production pointers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

checkpoint_app = typer.Typer(
    help="Registered checkpoints and the production pointer per persona (what `sample`/`chat --persona` use).",
    no_args_is_help=True,
)


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


@checkpoint_app.command("list")
def list_cmd(
    persona: Annotated[str | None, typer.Option("--persona", help="Only this persona.")] = None,
    stage: Annotated[
        str | None, typer.Option("--stage", help="Only this stage (dpo, sft, merged, ...).")
    ] = None,
) -> None:
    """Every registered checkpoint, newest first; `*` marks production."""
    from rich.table import Table

    from character import registry
    from character.cli import console

    prod = registry.personas_in_production()
    rows = registry.list_checkpoints(persona, stage)
    if not rows:
        console.print("no checkpoints registered yet (stages register what they save)")
        return
    t = Table(title=f"checkpoints ({registry.registry_path()})")
    for col in ("", "name", "persona", "stage", "kind", "verified", "created", "path"):
        t.add_column(col)
    for c in rows:
        star = "*" if prod.get(c.persona) == c.name else ""
        t.add_row(
            star,
            c.name,
            c.persona,
            c.stage,
            c.kind,
            "yes" if c.verified else "NO",
            _when(c.created_at),
            c.path,
        )
    console.print(t)


@checkpoint_app.command("show")
def show(name: Annotated[str, typer.Argument(help="Registry name.")]) -> None:
    """One checkpoint: path, base, run, metrics, verification, and its persona's promotion history."""
    from character import registry
    from character.cli import console
    from character.commands.eval_common import dumps

    c = registry.get(name)
    reg = registry.load()
    doc = c.model_dump(mode="json")
    doc["production"] = reg.production.get(c.persona) == c.name
    doc["path_exists"] = Path(c.path).exists()
    doc["promotions"] = [e.model_dump(mode="json") for e in reg.log if e.persona == c.persona][-10:]
    console.print(dumps(doc), markup=False, highlight=False)


@checkpoint_app.command("promote")
def promote(
    name: Annotated[str, typer.Argument(help="Registry name to ship for its persona.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the promotion log).")] = "",
    force: Annotated[
        bool, typer.Option("--force", help="Promote even if the checkpoint is unverified.")
    ] = False,
) -> None:
    """Point NAME's persona's production pointer at NAME (the previous one can be restored with rollback).

    Run `character eval compare --baseline <current> --candidate NAME` first: it recommends or refuses.
    """
    from character import registry
    from character.cli import console

    ev = registry.promote(name, reason=reason, force=force)
    console.print(f"production[{ev.persona}] = {ev.name} (was {ev.previous or 'none'})", markup=False)


@checkpoint_app.command("rollback")
def rollback(
    ctx: typer.Context,
    persona: Annotated[
        str | None, typer.Option("--persona", help="Persona to roll back (default: `persona`).")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the promotion log).")] = "",
) -> None:
    """Restore the persona's previous production checkpoint."""
    from character import registry
    from character.cli import console
    from character.commands.eval_common import resolve_cfg

    p = persona or resolve_cfg(ctx).persona
    ev = registry.rollback(p, reason=reason)
    console.print(f"production[{ev.persona}] = {ev.name} (was {ev.previous or 'none'})", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(checkpoint_app, name="checkpoint")
