"""`character data audit F`: contamination inventory, category balance, chosen-vs-rejected differences."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from character.commands.data_cmd import data_app

console = Console()


@data_app.command("audit")
def audit(
    src: Annotated[
        Path, typer.Argument(help="JSONL of DPO pairs (prompt/chosen/rejected) or `messages` rows.")
    ],
    persona: Annotated[
        str | None,
        typer.Option(
            "--persona",
            help="Constitution whose markers to count on chosen vs rejected replies; also checks the file for "
            "its evaluation prompts (held-out prompts, capability probes): train/eval overlap.",
        ),
    ] = None,
    name: Annotated[
        list[str] | None,
        typer.Option("--name", help="A name the model may call itself (not an identity leak); repeatable."),
    ] = None,
    max_identity_share: Annotated[
        float,
        typer.Option(
            "--max-identity-share",
            min=0.0,
            max=1.0,
            help="Warn when identity prompts pass this share (76% once erased a model's skills).",
        ),
    ] = 0.6,
    max_contamination_share: Annotated[
        float,
        typer.Option(
            "--max-contamination-share",
            min=0.0,
            max=1.0,
            help="Warn when one contamination passes this share.",
        ),
    ] = 0.01,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON instead of tables.")
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 when there is any warning (for CI gates).")
    ] = False,
) -> None:
    """Inventory what a training file contains before anything trains on it.

    Counts rows whose trained text (DPO chosen replies, assistant turns) has rubric text, another
    script, fake turns, refusals, identity leaks, garbage, loops or (near-)duplicates; the share of
    identity, knowledge and other prompts; and for DPO files how much chosen and rejected differ.

    Example: character data audit artifacts/runs/x/distill/pairs.jsonl --persona remorseful
    """
    from character.data_audit import CATEGORIES, audit_rows
    from character.data_clean import read_rows

    markers: tuple[str, ...] = ()
    rows = read_rows(src)
    overlap = []
    if persona:
        from character.config import RunConfig
        from character.constitutions import load_constitution
        from character.data_overlap import describe, eval_sets, find_overlap

        markers = tuple(load_constitution(persona).markers)
        overlap = find_overlap(rows, eval_sets(RunConfig(persona=persona)))
    report = audit_rows(
        rows,
        path=str(src),
        markers=markers,
        identity_names=tuple(name or ()),
        max_identity_share=max_identity_share,
        max_contamination_share=max_contamination_share,
    )
    if overlap:
        report.warnings.insert(0, "train/eval overlap: " + describe(overlap, src))
    if as_json:
        from dataclasses import asdict

        doc = {**report.to_json(), "eval_overlap": [asdict(o) for o in overlap]}
        typer.echo(json.dumps(doc, indent=2, default=str))
    else:
        kinds = ", ".join(f"{k} {n:,}" for k, n in report.kinds.items())
        console.print(f"[bold]{src}[/bold]: {report.rows:,} rows ({kinds})")
        t = Table(title="contamination (rows whose trained text has it)", show_edge=False)
        for col, just in (("finding", "left"), ("rows", "right"), ("share", "right"), ("examples", "left")):
            t.add_column(col, justify=just)  # type: ignore[arg-type]
        for key, f in report.contamination.items():
            style = "red" if f.rows else "dim"
            t.add_row(
                f"[{style}]{key}[/{style}]",
                f"{f.rows:,}",
                f"{report.share(f.rows):.1%}",
                ", ".join(map(str, f.examples[:3])),
            )
        console.print(t)
        t = Table(title="prompt categories", show_edge=False)
        t.add_column("category")
        t.add_column("rows", justify="right")
        t.add_column("share", justify="right")
        for c in CATEGORIES:
            n = report.categories.get(c, 0)
            t.add_row(c, f"{n:,}", f"{report.share(n):.1%}")
        console.print(t)
        p = report.pairs
        if p is not None:
            t = Table(title="chosen vs rejected", show_edge=False)
            t.add_column("measure")
            t.add_column("value", justify="right")
            t.add_row("pairs", f"{p.pairs:,}")
            t.add_row("identical / near-identical", f"{p.identical:,} / {p.near_identical:,}")
            t.add_row("mean word overlap (Jaccard)", f"{p.mean_jaccard:.2f}")
            t.add_row("mean characters chosen / rejected", f"{p.chosen_chars:.0f} / {p.rejected_chars:.0f}")
            t.add_row(
                "refusals chosen / rejected", f"{p.chosen_refusal_rate:.1%} / {p.rejected_refusal_rate:.1%}"
            )
            if p.chosen_marker_rate is not None:
                t.add_row(
                    "persona markers chosen / rejected",
                    f"{p.chosen_marker_rate:.1%} / {p.rejected_marker_rate:.1%}",
                )
            console.print(t)
        for w in report.warnings:
            console.print(f"[yellow]warning:[/yellow] {w}", soft_wrap=True)
        if not report.warnings:
            console.print("[green]no warnings[/green]")
    if strict and report.warnings:
        raise typer.Exit(1)
