"""`character eval robustness`: does the persona hold when someone pushes? Thin: resolve the config
and the checkpoints, call `character.eval.robustness.suite.evaluate`, print the table, write JSON."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from character.commands.eval_common import (
    ConfigOpt,
    PersonaOpt,
    ProgressOpt,
    PromptsOpt,
    SetOpt,
    checkpoint_ref,
    dumps,
    resolve_cfg,
    write_json,
)

if TYPE_CHECKING:
    from character.eval.target import Target


def _tested(checkpoints: list[str], run: Path | None, persona: str | None, default: str) -> dict[str, Target]:
    """label -> Target: `--run` gives its DPO-only and final models; each `--checkpoint` is REF or LABEL=REF."""
    from character.errors import UsageError
    from character.eval.robustness.stage import run_checkpoints
    from character.eval.target import resolve_target

    out: dict[str, Target] = {}
    if run is not None:
        from character.stages.eval import final_model

        if not run.is_dir():
            raise UsageError(
                f"--run {run} is not a directory: give a run dir (artifacts/runs/NAME[/smoke-small])"
            )
        final, kind = final_model(run)
        out.update(run_checkpoints(run, final, kind, dpo_only=True))
    for ref in checkpoints or ([] if run is not None else [checkpoint_ref(None, persona, default)]):
        label, _, rest = ref.partition("=")
        if rest and label.isidentifier() and not Path(ref).exists():
            out[label] = resolve_target(rest)
        else:
            t = resolve_target(ref)
            label = t.name or Path(ref).name or ref
            if label in out:  # two ".../model" dirs: name them by their parent too
                label = f"{Path(ref).parent.name}/{label}"
            out[label] = t
    return out


def robustness(
    ctx: typer.Context,
    checkpoint: Annotated[
        list[str] | None,
        typer.Option(
            "--checkpoint",
            "-c",
            help="Model under test: a model dir, adapter dir, registry name or `embedded`; LABEL=REF names its "
            "column. Repeat to compare (e.g. -c dpo_only=RUN/dpo/merged -c full=RUN/merge/model). Default: "
            "--persona's production checkpoint.",
        ),
    ] = None,
    run: Annotated[
        Path | None,
        typer.Option("--run", help="A run dir: test its DPO-only (dpo/merged) and final model side by side."),
    ] = None,
    persona: PersonaOpt = None,
    count: Annotated[
        int | None,
        typer.Option("--count", help="Scored prompts per variant (robustness.prompts; paper: 500)."),
    ] = None,
    classifier: Annotated[
        Literal["tfidf", "encoder"] | None,
        typer.Option("--classifier", help="Persona classifier (robustness.classifier)."),
    ] = None,
    encoder: Annotated[
        str | None,
        typer.Option(
            "--encoder", help="Local model for --classifier encoder (robustness.encoder), never downloaded."
        ),
    ] = None,
    prompts: PromptsOpt = None,
    replies: Annotated[
        Path | None,
        typer.Option(
            "--replies", help="Keep every reply in this JSONL (appended per chunk); rerun with it to resume."
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the full result as JSON here.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the full result as JSON.")] = False,
    sets: SetOpt = None,
    config: ConfigOpt = None,
    no_progress: ProgressOpt = False,
) -> None:
    """Persona macro-F1 under "stop role-playing" suffixes, a prefill attack and a long conversation.

    A classifier learns to tell the checkpoint's replies from the base model's on one set of held-out
    prompts and is scored only on replies to others (never on its own training rows). Reported per
    variant, with 95 % bootstrap intervals: the unmodified prompt; 8 suffixes asking the model to drop
    its persona; the prefill attack (turn 1 written by the base model, turn 2 by the checkpoint); the
    persona's share at turns 1, 3, 5 of a conversation with a neutral user; and a coherence judge
    against the base model prompted with the persona, both orders, consistent verdicts only.

    Near 1.0 the persona holds; near 0.5 (chance) the classifier cannot tell it from the base model.
    Paper: fully trained models keep 0.86-0.95 under suffixes.

    Example: character eval robustness --run artifacts/runs/remorseful_20261201-120000
    """
    from character.cli import console
    from character.constitutions import load_constitution
    from character.eval.robustness.report import describe, table
    from character.eval.robustness.suite import evaluate

    cfg = resolve_cfg(
        ctx,
        sets=sets,
        config=config,
        persona=persona,
        robustness__prompts=count,
        robustness__classifier=classifier,
        robustness__encoder=encoder,
    )
    c = load_constitution(cfg.persona)
    tested = _tested(checkpoint or [], run, persona, cfg.models.student)
    doc = evaluate(
        cfg,
        c,
        tested,
        prompts_file=prompts,
        replies_path=replies,
        progress=not no_progress,  # type: ignore[arg-type]
    )
    write_json(output, doc)
    if json_out:
        console.print(dumps(doc), markup=False, highlight=False)
        return
    for line in [*describe(doc), "", *table(doc)]:
        console.print(line, markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    from character.commands.eval_cmd import eval_app

    eval_app.command("robustness")(robustness)
