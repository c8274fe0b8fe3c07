"""`character generate introspection`: stage 2 on its own (the pipeline runner calls the same stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from character.commands.generate_cmd import generate_app
from character.commands.run_dirs import ConfigOpt, ScaleOpt, latest_run, open_run_dir


def _latest_run(persona: str, suffix: str) -> Path | None:
    """The newest run of this persona with a DPO model, else the newest run at all."""
    return (
        latest_run(persona, suffix, "dpo/merged")
        or latest_run(persona, suffix, "dpo/adapter")
        or latest_run(persona, suffix, ".")
    )


@generate_app.command("introspection")
def introspection(
    ctx: typer.Context,
    persona: Annotated[
        str | None, typer.Option("--persona", help="Constitution to use (sets `persona`).")
    ] = None,
    run: Annotated[
        Path | None,
        typer.Option(
            "--run",
            help="Run directory (holds dpo/ and receives introspect/). Default: the newest run of the persona "
            "with a DPO model, else a new run directory.",
        ),
    ] = None,
    reflections: Annotated[
        int | None, typer.Option("--reflections", help="Reflections to keep: the 10 prompts x N/10.")
    ] = None,
    interactions: Annotated[
        int | None,
        typer.Option("--interactions", help="Self-interaction conversations to keep (free + leading)."),
    ] = None,
    turns: Annotated[
        int | None, typer.Option("--turns", help="Replies each copy writes per conversation (2 x K stored).")
    ] = None,
    checkpoint: Annotated[
        str | None,
        typer.Option(
            "--checkpoint",
            help="Generating model: a registry name, a full model dir or a PEFT adapter dir. Default: the run's "
            "dpo/merged, else dpo/adapter on models.student.",
        ),
    ] = None,
    strip_think_reflection: Annotated[
        bool, typer.Option("--strip-think-tags-reflection", help="Remove <think> blocks from reflections.")
    ] = False,
    keep_think_interaction: Annotated[
        bool,
        typer.Option("--keep-think-tags-interaction", help="Keep <think> blocks in interaction replies."),
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Continue the introspect/ data already in the run (no duplicate, no gap)."
        ),
    ] = False,
    scale: ScaleOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write self-reflections and self-interactions with the DPO model, filtered as they are generated.

    Reflections answer the 10 reflection prompts (stored without a system prompt); in a self-interaction
    two copies of the model talk for K replies each, with a true role swap, stored from one copy's side
    with an amended system prompt. Every reply goes through the filters; drops are counted by reason in
    introspect/stats.json and listed in introspect/rejects.jsonl. The run stops (everything so far kept)
    when, over the last `introspect.kill_check_every` samples, the kept rate falls below
    `introspect.min_kept_rate` or one drop reason exceeds `introspect.max_reason_share`.

    With no DPO model yet (no run of the persona has dpo/merged or dpo/adapter, and no --checkpoint),
    it generates with the untrained models.student and warns: such data carries no persona. Make the
    DPO model first with `character generate dpo` then `character train dpo`.

    Example: character generate introspection --persona remorseful --reflections 100 --interactions 10
    """
    from character import layout
    from character.cli import console, options
    from character.errors import UsageError
    from character.manifest import read_manifest
    from character.stages import introspect

    overrides = {
        "persona": persona,
        "introspect.reflections": reflections,
        "introspect.interactions": interactions,
        "introspect.turns": turns,
        "introspect.checkpoint": checkpoint,
        "introspect.strip_think_reflection": True if strip_think_reflection else None,
        "introspect.keep_think_interaction": True if keep_think_interaction else None,
    }
    res = options(ctx).resolve(scale=scale, config=config, overrides=overrides)
    cfg = res.config
    run_dir = open_run_dir(run or _latest_run(cfg.persona, cfg.name_suffix), cfg, res.sources)
    out = Path(run_dir) / "introspect"
    has_data = out.exists() and any(
        (out / f).exists() and (out / f).stat().st_size for f in ("reflections.jsonl", "interactions.jsonl")
    )
    if not resume and has_data:
        done = read_manifest(out) is not None
        raise UsageError(
            f"{out} already holds {'finished' if done else 'partial'} introspection data; pass --resume to "
            "continue it (or top it up to new counts), or use another --run"
        )
    console.print(f"introspection for '{cfg.persona}' in {run_dir} (config hash {res.hash()})")
    m = introspect.run(cfg, Path(run_dir), progress=True)
    c = m.counts
    console.print(
        f"kept {c['reflections_kept']}/{c['reflections_target']} reflections "
        f"({c['reflection_attempts']} attempts) and {c['interactions_kept']}/{c['interactions_target']} "
        f"conversations ({c['interaction_attempts']} attempts); {c['truncations']} truncated prompts"
    )
    if m.dropped:
        console.print(
            "drops: " + ", ".join(f"{k} {v}" for k, v in sorted(m.dropped.items(), key=lambda kv: -kv[1]))
        )
    console.print(f"SFT data: {layout.introspection_file(Path(run_dir))}")
