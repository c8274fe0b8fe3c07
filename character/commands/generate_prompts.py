"""`character generate prompts`: expand a constitution's questions with the teacher (resumable)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from character.commands.generate_cmd import generate_app


def _parse_traits(spec: str | None, n: int) -> list[int] | None:
    from character.errors import UsageError

    if not spec:
        return None
    out = []
    for part in spec.split(","):
        try:
            i = int(part.strip())
        except ValueError:
            raise UsageError(
                f"--traits {spec!r}: use trait numbers from 1 to {n}, e.g. --traits 1,3"
            ) from None
        if not 1 <= i <= n:
            raise UsageError(
                f"--traits {spec!r}: trait {i} is out of range; this constitution has {n} traits"
            )
        out.append(i - 1)
    return out


@generate_app.command("prompts")
def prompts(
    ctx: typer.Context,
    persona: Annotated[
        str | None, typer.Option("--persona", help="Constitution to expand (sets `persona`).")
    ] = None,
    per_trait: Annotated[
        int,
        typer.Option(
            "--per-trait", min=1, help="Questions per trait in total, hand-written ones included (paper: 50)."
        ),
    ] = 50,
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Most teacher rounds in this call.")] = 20,
    max_new_tokens: Annotated[
        int,
        typer.Option("--max-new-tokens", min=16, help="Tokens the teacher may write per round and trait."),
    ] = 384,
    traits: Annotated[
        str | None, typer.Option("--traits", help="Only these traits, numbered from 1 (e.g. 1,3).")
    ] = None,
    teacher: Annotated[
        str | None, typer.Option("--teacher", help="Teacher model (sets `models.teacher`).")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="JSONL to append to (default: PERSONA.jsonl in artifacts/prompts/)."
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue an existing file (top it up to --per-trait, no duplicates)."),
    ] = False,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Start over: move an existing file to FILE.bak first.")
    ] = False,
    scale: Annotated[
        str | None, typer.Option("--scale", help="Preset to apply (smoke-small, demo, paper, ...).")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="A TOML or YAML config file.")] = None,
) -> None:
    """Write more user questions for each trait with the teacher, the paper's way.

    The teacher continues a numbered list that starts with the trait's own questions; lines that
    start with a letter and end in `?` or `.` are kept, and a line sharing more than half its words
    with a kept question is dropped. `--resume` continues where the file stops (no duplicates);
    later stages pick the file up automatically (`bank.persona_prompts`), holding back about 10 % of
    the new questions for evaluation.

    Example: character generate prompts --persona pirate --per-trait 50
    """
    from character.atomic import atomic_write_json
    from character.cli import console, options
    from character.constitutions import load_constitution
    from character.cost import CostTracker
    from character.errors import UsageError
    from character.prompts.bank import expanded_path
    from character.prompts.expand import expand_with_config

    overrides = {"persona": persona, "models.teacher": teacher}
    res = options(ctx).resolve(scale=scale, config=config, overrides=overrides)
    cfg = res.config
    c = load_constitution(cfg.persona)
    chosen = _parse_traits(traits, len(c.traits))
    out = output or expanded_path(c.name)
    if resume and fresh:
        raise UsageError("--resume and --fresh contradict each other: pick one")
    if out.exists() and out.stat().st_size:
        if fresh:
            out.replace(out.with_name(out.name + ".bak"))
            console.print(f"moved the old file to {out.name}.bak")
        elif resume:
            console.print(f"continuing {out}")
        else:
            raise UsageError(
                f"{out} already holds expanded questions: pass --resume to continue it (or top it up to a new "
                "--per-trait), or --fresh to start over"
            )
    tracker = CostTracker(cfg.backend.prices, cfg.budget_usd)
    console.print(
        f"expanding '{c.name}' to {per_trait} questions per trait with teacher {cfg.models.teacher}"
    )
    r = expand_with_config(
        cfg, c, out, tracker=tracker, per_trait=per_trait, max_rounds=rounds, max_new_tokens=max_new_tokens,
        traits=chosen,
    )  # fmt: skip
    per_trait_counts = {str(k + 1): v for k, v in r.per_trait.items()}
    summary = {
        "persona": c.name,
        "per_trait_target": per_trait,
        "per_trait": per_trait_counts,
        "added": r.added,
        "rounds": r.rounds,
        "dropped": dict(r.dropped),
        "complete": r.complete,
        "teacher": cfg.models.teacher,
        "duration_s": round(r.duration_s, 1),
        "cost": tracker.totals(),
    }
    atomic_write_json(out.with_name(out.stem + ".summary.json"), summary)
    counts = ", ".join(f"{k}:{v}" for k, v in per_trait_counts.items())
    drops = ", ".join(f"{k} {v}" for k, v in sorted(r.dropped.items(), key=lambda kv: -kv[1])) or "none"
    console.print(
        f"added {r.added} questions in {r.rounds} round(s) ({r.duration_s:.1f}s); per trait {counts}"
    )
    console.print(f"dropped: {drops}")
    if not r.complete:
        console.print(f"not every trait reached {per_trait}: run the same command with --resume to continue")
    console.print(f"written to {out}")
