"""`character data clean IN.jsonl --output OUT.jsonl --rejects REJ.jsonl`: the online filters, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from character.commands.data_cmd import data_app

console = Console()


@data_app.command("clean")
def clean(
    src: Annotated[
        Path, typer.Argument(help="JSONL of DPO pairs (prompt/chosen/rejected) or `messages` rows.")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Where the kept rows go (written atomically).")
    ],
    rejects: Annotated[
        Path | None,
        typer.Option(
            "--rejects", help="Where rejected rows go, each with its reason, evidence and original row."
        ),
    ] = None,
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            help="auto (from each row's shape and `kind` field), dpo, reflection, interaction or generic.",
        ),
    ] = "auto",
    persona: Annotated[
        str | None,
        typer.Option(
            "--persona",
            help="Constitution the data was made for: DPO chosen replies are checked for leaking its teacher "
            "system prompt (trait lines copied into the reply).",
        ),
    ] = None,
    name: Annotated[
        list[str] | None,
        typer.Option(
            "--name", help="A name the model may call itself (the persona's or student's); repeatable."
        ),
    ] = None,
    skip: Annotated[
        list[str] | None, typer.Option("--skip", help="A filter reason id not to check (repeatable).")
    ] = None,
    rubric_label: Annotated[
        list[str] | None,
        typer.Option("--rubric-label", help="A line label of your scoring rubric to treat as an artefact."),
    ] = None,
    language: Annotated[
        str,
        typer.Option(
            "--language",
            help="Language the replies must be in (ISO 639-1, offline identifier); prose in another "
            "Latin-script language is dropped as language_drift unless its prompt names that language. "
            "'' turns the check off.",
        ),
    ] = "en",
) -> None:
    """Run the same filters as generation on a JSONL file, keeping ids and row structure.

    Every assistant turn of a conversation is checked (multi-turn self-interactions keep all their
    turns); both sides of a DPO pair are checked, the chosen side strictly, the rejected side only for
    broken text (a generic-assistant or refusing rejected reply is a good negative). Repairs (a fake
    "User:" turn cut, a leading "Assistant:" removed) are kept; everything else drops the row with a
    reason. Prints the counts per reason.

    Example: character data clean artifacts/runs/x/introspect/introspection.jsonl -o clean.jsonl --rejects rej.jsonl
    """
    from character.data_clean import CleanOptions, clean_file
    from character.filters import REASONS

    system = ""
    if persona:
        from character.constitutions import load_constitution
        from character.prompts.system import teacher_system

        system = teacher_system(load_constitution(persona))
    bad = sorted(set(skip or ()) - set(REASONS))
    if bad:
        from character.errors import UsageError

        raise UsageError(f"--skip {', '.join(bad)} is not a filter reason: use ids from {', '.join(REASONS)}")
    from character.filters.language import FUNCTION_WORDS

    if language and language not in FUNCTION_WORDS:
        from character.errors import UsageError

        raise UsageError(
            f"--language {language!r} has no function-word list: use one of {', '.join(sorted(FUNCTION_WORDS))}, "
            "or --language '' to turn the check off"
        )
    opts = CleanOptions(
        kind=kind,
        identity_names=tuple(name or ()),
        system_prompt=system,
        skip=frozenset(skip or ()),
        rubric_labels=tuple(rubric_label or ()),
        language=language,
    )
    res = clean_file(src, output, rejects, opts)

    table = Table(title=f"data clean: {src}", show_edge=False)
    table.add_column("reason")
    table.add_column("rows", justify="right")
    table.add_column("share", justify="right")
    for reason, n in res.reasons.most_common():
        table.add_row(reason, f"{n:,}", f"{n / max(res.rows, 1):.1%}")
    table.add_row("[bold]kept[/bold]", f"{res.kept:,}", f"{res.kept / max(res.rows, 1):.1%}")
    console.print(table)
    if res.repairs:
        fixed = ", ".join(f"{r} {n:,}" for r, n in res.repairs.most_common())
        console.print(f"repaired and kept: {fixed}")
    kinds = ", ".join(f"{k} {n:,}" for k, n in res.by_kind.most_common())
    console.print(
        f"{res.rows:,} rows ({kinds}): {res.kept:,} kept ({res.repaired:,} repaired), {res.rejected:,} rejected"
        f" -> {output}" + (f", rejects -> {rejects}" if rejects else "")
    )
