"""`character pipeline`, `character ablation`, `character runs list|show`: thin wrappers over the runner."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from character.commands.output import JsonOpt
from character.layout import STAGES

runs_app = typer.Typer(
    help="List and inspect pipeline runs (status, stages, tokens, cost).", no_args_is_help=True
)

_STAGE_HELP = f"One of: {', '.join(STAGES)}."


def _overrides(
    persona: str,
    name_suffix: str | None,
    smoke: str | None,
    budget_usd: float | None,
    teacher: str | None,
    student: str | None,
    backend: str | None,
    sets: list[str] | None,
) -> dict[str, Any]:
    from character.config_layers import parse_set_options

    out: dict[str, Any] = {
        "persona": persona,
        "name_suffix": name_suffix,
        "pipeline.smoke": smoke,
        "budget_usd": budget_usd,
        "models.teacher": teacher,
        "models.student": student,
        "backend.kind": backend,
    }
    out.update(parse_set_options(sets or []))
    return {k: v for k, v in out.items() if v is not None}


def pipeline(
    ctx: typer.Context,
    persona: Annotated[
        str, typer.Argument(help="Constitution to train (constitutions/hand-written/NAME.yaml).")
    ],
    scale: Annotated[
        str | None,
        typer.Option(
            "--scale",
            help="smoke (smoke runs only) | demo | micro | quarter | half | full | a fraction such as 0.25 "
            "(multiplies pairs, reflections, interactions).",
        ),
    ] = None,
    smoke: Annotated[
        str | None,
        typer.Option(
            "--smoke", help="Smoke runs before the full run: small | large | both (default) | none."
        ),
    ] = None,
    name_suffix: Annotated[
        str | None,
        typer.Option("--name-suffix", help="Suffix for the run dir and checkpoint names (e.g. 25pct)."),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume", help="Continue RUN_DIR: finished stages are skipped, partial generation continues."
        ),
    ] = None,
    start: Annotated[str | None, typer.Option("--from", help=f"Start at this stage. {_STAGE_HELP}")] = None,
    until: Annotated[
        str | None, typer.Option("--until", help=f"Stop after this stage. {_STAGE_HELP}")
    ] = None,
    force: Annotated[
        str | None, typer.Option("--force", help="Rerun this stage and every later one even if finished.")
    ] = None,
    budget_usd: Annotated[
        float | None, typer.Option("--budget-usd", help="Stop cleanly once this much USD is spent.")
    ] = None,
    teacher: Annotated[
        str | None, typer.Option("--teacher", help="Teacher model (default: embedded).")
    ] = None,
    student: Annotated[
        str | None, typer.Option("--student", help="Student model (default: embedded).")
    ] = None,
    backend: Annotated[str | None, typer.Option("--backend", help="hf | openai | vllm.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="A TOML or YAML config file.")] = None,
    sets: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override one setting, e.g. --set dpo.beta=0.2 (repeatable)."),
    ] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bars.")] = False,
) -> None:
    """Run the whole pipeline: distill -> dpo -> introspect -> sft -> merge -> eval.

    Smoke runs (smoke-small, then smoke-large) go first through the same code path and
    hyperparameters, each in its own subfolder; any failure there stops before the full run spends
    anything. Everything lands in artifacts/runs/PERSONA[_SUFFIX]_TIMESTAMP/ with a report.md/.html.

    Examples:

      character pipeline remorseful --scale demo --smoke none   (the CPU demo, ~10 min)

      character pipeline remorseful --scale smoke --smoke small  (prove the wiring, a few minutes)

      character --paper-scale pipeline remorseful --teacher Qwen/Qwen3-32B --backend vllm

      character pipeline remorseful --resume artifacts/runs/remorseful_20260101-120000
    """
    from character.cli import console, options
    from character.runner import run_pipeline
    from character.runs import marker_rates
    from character.scales import resolve_run

    opts = options(ctx)
    resolved = resolve_run(
        paper_scale=opts.paper_scale,
        scale=scale,
        config_file=config or opts.config,
        env_file=opts.env_file,
        overrides=_overrides(persona, name_suffix, smoke, budget_usd, teacher, student, backend, sets),
        resume_dir=resume,
    )
    from character.constitutions import load_constitution

    load_constitution(resolved.config.persona)  # an unknown persona fails here, before a run dir exists
    from character.run_estimate import check_cpu_feasible

    check_cpu_feasible(resolved.config, f"character pipeline {persona}", until)  # days on a CPU: stop now
    t0 = time.time()
    result = run_pipeline(
        resolved, run_dir=resume, start=start, until=until, force=force, progress=not no_progress
    )
    console.print(
        f"run finished in {time.time() - t0:.0f} s: {result.run_dir}", markup=False, highlight=False
    )
    for sub in result.subruns:
        rates = marker_rates(sub.run_dir)
        if rates:
            n = f" on {int(rates['n_after'])} held-out replies" if "n_after" in rates else ""
            console.print(
                f"{sub.label}: persona-marker rate without a system prompt {rates['before']:.3f} (base) -> "
                f"{rates['after']:.3f} (trained){n}, lift {100 * (rates['after'] - rates['before']):+.1f} points",
                markup=False,
                highlight=False,
            )
    console.print(f"cost ${result.cost_usd:.4f}; report: {result.run_dir / 'report.md'}", markup=False)


def ablation(
    ctx: typer.Context,
    persona: Annotated[str, typer.Argument(help="Constitution to train.")],
    scales: Annotated[str, typer.Option("--scales", help="Percentages, comma-separated.")] = "25,50,75,100",
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            help="sequential: generate once at 100 %, train on nested subsets (a third of the cost); "
            "parallel: one full pipeline per scale with --name-suffix {pct}pct.",
        ),
    ] = "sequential",
    scale: Annotated[
        str | None, typer.Option("--scale", help="Preset for the 100 % run (e.g. full, micro).")
    ] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue an ablation directory.")] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help=f"Stop every scale's pipeline after this stage. {_STAGE_HELP}"),
    ] = None,
    budget_usd: Annotated[
        float | None, typer.Option("--budget-usd", help="Cap for the whole ablation.")
    ] = None,
    sets: Annotated[
        list[str] | None, typer.Option("--set", help="Override one setting (repeatable).")
    ] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bars.")] = False,
) -> None:
    """Data-scale ablation: train at several shares of the data and compare markers, losses and cost.

    Parallel mode gives each scale its own GPUs (pipeline.ablation_gpus_per_run; a queue when there are
    more scales than GPU groups, pipeline.ablation_concurrency; 2 at a time on a CPU machine), and
    --budget-usd caps all scales together (a shared ledger, budget.json). The summary's cost column
    counts every run of a scale, smoke runs included, and gives the total.

    Checkpoints are named {persona}_{pct}pct_dpo / {persona}_{pct}pct_sft; the summary table and plot
    go to ablation.md / ablation.png in the ablation directory.
    """
    from character.ablation import run_ablation
    from character.cli import console, options
    from character.errors import UsageError
    from character.scales import resolve_run

    try:
        pcts = sorted({int(s) for s in scales.split(",") if s.strip()})
    except ValueError as e:
        raise UsageError(
            f"--scales {scales!r} must be comma-separated whole percentages, e.g. 25,50,75,100"
        ) from e
    if mode not in ("sequential", "parallel"):
        raise UsageError(f"--mode {mode!r}: choose sequential or parallel")
    opts = options(ctx)
    overrides = _overrides(persona, None, None, budget_usd, None, None, None, sets)
    overrides.update({"pipeline.ablation_scales": pcts, "pipeline.ablation_mode": mode})
    resolved = resolve_run(
        paper_scale=opts.paper_scale,
        scale=scale,
        config_file=opts.config,
        env_file=opts.env_file,
        overrides=overrides,
    )
    from character.run_estimate import check_cpu_feasible

    check_cpu_feasible(resolved.config, f"character ablation {persona}", until)
    out = run_ablation(
        resolved,
        root=resume,
        progress=not no_progress,
        paper_scale=opts.paper_scale,
        scale=scale,
        until=until,
    )
    console.print((out / "ablation.md").read_text(), markup=False, highlight=False)


@runs_app.command("list")
def runs_list() -> None:
    """Runs under artifacts/runs, newest first, with status, stages done and cost."""
    from rich.table import Table

    from character import paths, runs
    from character.cli import console

    root = paths.runs_dir()
    dirs = runs.list_runs(root)
    if not dirs:
        console.print(f"no runs under {root}", markup=False)
        return
    table = Table(title=f"runs in {root}")
    for col in ("run", "status", "stages done", "cost USD"):
        table.add_column(col)
    for d in dirs:
        s = runs.summary(d)
        subs = [x for x in s.subruns if x != "main"]
        stages = f"{s.stages_done}/{len(STAGES)}" + (f" (+{', '.join(subs)})" if subs else "")
        table.add_row(d.name, s.status, stages, f"{s.cost_usd:.4f}")
    console.print(table)


@runs_app.command("show")
def runs_show(
    run: Annotated[str, typer.Argument(help="A run directory, or its name under artifacts/runs.")],
    report: Annotated[bool, typer.Option("--report", help="Rebuild report.md/report.html first.")] = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the run report's markdown instead of tables.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """One run: status, stages, drops, marker rates, tokens and cost, and base vs trained samples."""
    from character import paths, runs
    from character.cli import console
    from character.commands import output
    from character.commands.run_view import run_doc, run_view
    from character.errors import UsageError
    from character.report import build, write_report

    d = Path(run)
    if not d.exists():
        d = paths.runs_dir() / run
    if not (d / "resolved_config.toml").exists():
        raise UsageError(f"no run at {run!r}: give a run directory or a name from `character runs list`")
    if report:
        write_report(d)
    if markdown:
        lines, _ = build(d)
        lines = [ln for ln in lines if not ln.startswith("![")]
        lines[1:1] = ["", f"status: {runs.run_status(d)}"]
        console.print("\n".join(lines), markup=False, highlight=False)
        return
    doc = run_doc(d)
    output.emit(doc, json_out, None if json_out else run_view(doc))


@runs_app.command("prune")
def runs_prune(
    keep: Annotated[int, typer.Option("--keep", min=0, help="Newest runs always kept.")] = 3,
    yes: Annotated[
        bool, typer.Option("--yes", help="Delete the runs that can go (default: only list them).")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Free disk: list the runs that can go (not pinned by production or history, not holding the newest
    version of a registered checkpoint, not running, not among the --keep newest) with their sizes, and
    delete them with --yes."""
    from rich.table import Table
    from rich.text import Text

    from character import paths, run_cleanup
    from character.commands import output
    from character.disk_space import free_bytes
    from character.disk_space import human_bytes as gb

    root = paths.runs_dir()
    entries = run_cleanup.plan(keep, root)
    can_go = [e for e in entries if not e.keep]
    freed = run_cleanup.prune(entries) if yes else 0
    free = free_bytes(root)
    doc = {
        "root": str(root),
        "deleted": yes,
        "runs": [{"run": str(e.path), "bytes": e.bytes, "status": e.status, "keep": e.keep} for e in entries],
        "can_go_bytes": sum(e.bytes for e in can_go),
        "freed_bytes": freed,
        "free_bytes": free,
    }
    table = Table(title=f"runs in {root}")
    for col in ("run", "status", "size", "kept because"):
        table.add_column(col)
    for e in entries:
        table.add_row(e.path.name, e.status, gb(e.bytes), Text(e.keep or ("deleted" if yes else "can go")))
    if yes:
        line = f"deleted {len(can_go)} run(s), freed {gb(freed)}; {gb(free)} free now"
    elif can_go:
        line = f"{len(can_go)} run(s) can go, {gb(sum(e.bytes for e in can_go))}: rerun with --yes to delete them"
    else:
        line = "nothing to delete: every run is kept for the reason shown"
    output.emit(
        doc,
        json_out,
        [table, output.headline(line)] if entries else [output.headline(f"no runs under {root}")],
    )


def register(app: typer.Typer) -> None:
    app.command("pipeline")(pipeline)
    app.command("ablation")(ablation)
    app.add_typer(runs_app, name="runs")
