"""`character checkpoint list | show | promote NAME | rollback`: the registry and the production pins.

Thin: every rule (hash pins, versions, the compare evidence promotion needs) is in `character.registry`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from character.commands.output import JsonOpt

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
    json_out: JsonOpt = False,
) -> None:
    """Every registered checkpoint, newest first; `*` marks production."""
    from rich.table import Table

    from character import registry
    from character.cli import console
    from character.commands.output import print_json

    prod = registry.personas_in_production()
    rows = registry.list_checkpoints(persona, stage)
    if json_out:
        print_json([c.model_dump(mode="json") | {"production": prod.get(c.persona) == c.name} for c in rows])
        return
    if not rows:
        console.print("no checkpoints registered yet (stages register what they save)")
        return
    t = Table(title=f"checkpoints ({registry.registry_path()})")
    for col in ("", "name", "persona", "stage", "kind", "verified", "sha256", "created", "path"):
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
            (c.sha256 or "none")[:12],
            _when(c.created_at),
            c.path,
        )
    console.print(t)


@checkpoint_app.command("show")
def show(name: Annotated[str, typer.Argument(help="Registry name.")]) -> None:
    """One checkpoint: path, hash, base, run, metrics, verification, the compare records made for its
    hash, and its persona's promotion history. NAME@N names one version; a bare NAME the newest."""
    from character import evidence, registry
    from character.cli import console
    from character.commands.eval_common import dumps

    c = registry.get(name)
    reg = registry.load()
    doc = c.model_dump(mode="json")
    pin = reg.production.get(c.persona)
    doc["production"] = pin is not None and pin.name == c.name
    doc["path_exists"] = Path(c.path).exists()
    doc["smoke"] = registry.smoke_reason(c)
    doc["compare_records"] = [
        {k: r.get(k) for k in ("recommendation", "persona", "created_at")}
        | {"baseline": r["baseline"]["ref"]}
        for r in (evidence.records_for(c.sha256) if c.sha256 else [])
    ]
    doc["promotions"] = [e.model_dump(mode="json") for e in reg.log if e.persona == c.persona][-10:]
    console.print(dumps(doc), markup=False, highlight=False)


@checkpoint_app.command("promote")
def promote(
    name: Annotated[
        str, typer.Argument(help="Registry name to ship for its persona (NAME@N for a version).")
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the promotion log).")] = "",
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Promote without a passing compare record (or unverified); needs --reason, logged as forced.",
        ),
    ] = False,
) -> None:
    """Pin NAME's files (path and sha256) as its persona's production; the previous pin goes to history.

    Needs a passing `character eval compare --baseline <current production, or the base model>
    --candidate NAME` record for NAME's exact weights. Smoke checkpoints are never promoted.
    """
    from character import registry
    from character.cli import console

    ev = registry.promote(name, reason=reason, force=force)
    how = "FORCED: " + ev.reason if ev.forced else f"evidence {ev.evidence}"
    console.print(
        f"production[{ev.persona}] = {ev.name} sha256 {(ev.sha256 or '')[:12]} "
        f"(was {ev.previous or 'none'}; {how})",
        markup=False,
    )


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
