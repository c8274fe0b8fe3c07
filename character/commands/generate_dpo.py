"""`character generate dpo`: stage 1a on its own (the pipeline runner calls the same stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from character.commands.generate_cmd import generate_app
from character.commands.run_dirs import ConfigOpt, ScaleOpt, latest_run, open_run_dir


@generate_app.command("dpo")
def dpo(
    ctx: typer.Context,
    persona: Annotated[
        str | None, typer.Option("--persona", help="Constitution to distill (sets `persona`).")
    ] = None,
    pairs: Annotated[
        int | None, typer.Option("--pairs", help="Pairs to keep after filtering (distill.pairs).")
    ] = None,
    k: Annotated[int | None, typer.Option("--k", help="Samples per prompt (distill.k; paper: 5).")] = None,
    teacher: Annotated[
        str | None,
        typer.Option(
            "--teacher", help="Teacher model: `embedded`, a local path or a HF id (models.teacher)."
        ),
    ] = None,
    student: Annotated[
        str | None,
        typer.Option("--student", help="Student model, writes the rejected replies (models.student)."),
    ] = None,
    backend: Annotated[
        str | None, typer.Option("--backend", help="Generation engine: hf, openai or vllm (backend.kind).")
    ] = None,
    prefill: Annotated[
        str | None,
        typer.Option(
            "--prefill", help="Teacher reply opener: off, markers or think (distill.teacher_prefill)."
        ),
    ] = None,
    temperature: Annotated[float | None, typer.Option("--temperature", help="sampling.temperature")] = None,
    top_p: Annotated[float | None, typer.Option("--top-p", help="sampling.top_p")] = None,
    max_new_tokens: Annotated[
        int | None, typer.Option("--max-new-tokens", help="sampling.max_new_tokens")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", help="Pairs file to write. Default: RUN/distill/pairs.jsonl.")
    ] = None,
    run: Annotated[
        Path | None,
        typer.Option(
            "--run",
            help="Run directory (receives distill/). Default: a new run directory; with --resume, the newest "
            "run of the persona that has distill data.",
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run's distill data exactly where it stopped.")
    ] = False,
    scale: ScaleOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Generate DPO pairs: the teacher answers with the constitution, the student without it.

    The teacher sees a system prompt that frames it as an assistant with the constitution's traits
    (optionally starting its reply with a marker phrase, needed for small teachers, or a <think> block);
    the student sees no system prompt. Both replies are filtered (empty, cut off, fake turns, garbage or
    CJK, rubric text, identity leaks, refusals in chosen, too long for dpo.max_length) and filtered
    attempts are topped up. distill/stats.json and distill/previews.md tell you what you got; the data
    gates (distill.min_chosen_marker_rate, min_marker_gap, max_chosen_refusal_rate, min_kept_rate) stop
    the stage with the numbers and examples when the pairs cannot teach the persona.

    Example: character generate dpo --persona remorseful --pairs 96 --k 1
    """
    from character import layout
    from character.cli import console, options
    from character.errors import UsageError
    from character.stages import distill

    overrides = {
        "persona": persona,
        "distill.pairs": pairs,
        "distill.k": k,
        "distill.teacher_prefill": prefill,
        "models.teacher": teacher,
        "models.student": student,
        "backend.kind": backend,
        "sampling.temperature": temperature,
        "sampling.top_p": top_p,
        "sampling.max_new_tokens": max_new_tokens,
    }
    res = options(ctx).resolve(scale=scale, config=config, overrides=overrides)
    cfg = res.config
    run_dir = run
    if run_dir is None and resume:
        run_dir = latest_run(cfg.persona, cfg.name_suffix, "distill/attempts.jsonl")
        if run_dir is None:
            raise UsageError(
                f"--resume: no run of '{cfg.persona}' has distill data; give --run or leave out --resume"
            )
    run_dir = open_run_dir(run_dir, cfg, res.sources)
    pairs_path = output or layout.pairs_file(run_dir)
    attempts = Path(run_dir) / "distill" / "attempts.jsonl"
    started = any(p.exists() and p.stat().st_size for p in (pairs_path, attempts))
    if started and not resume:
        raise UsageError(
            f"{pairs_path if pairs_path.exists() else attempts} already holds distill data; pass --resume to "
            "continue it, or choose another --output/--run"
        )
    console.print(f"distilling '{cfg.persona}' into {pairs_path} (config hash {res.hash()})")
    m = distill.run(cfg, Path(run_dir), progress=True, pairs_path=pairs_path)
    mt = m.metrics
    console.print(
        f"kept {m.counts['kept']}/{m.counts['target']} pairs from {m.counts['attempted']} attempts "
        f"(kept rate {mt['kept_rate']:.2f}); marker rate chosen {mt['marker_rate_chosen']:.2f} vs rejected "
        f"{mt['marker_rate_rejected']:.2f}; teacher refusals {mt['refusal_rate_chosen']:.2f}"
    )
    if m.dropped:
        console.print(
            "drops: " + ", ".join(f"{r} {n}" for r, n in sorted(m.dropped.items(), key=lambda kv: -kv[1]))
        )
    console.print(f"pairs: {pairs_path}\nstats: {m.outputs['stats']}\npreviews: {m.outputs['previews']}")
