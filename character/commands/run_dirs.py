"""What the stand-alone stage commands share: the options every one of them takes, and how they find
or create the run directory they work in (the same layout the pipeline runner uses)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from character.config import RunConfig
from character.errors import UsageError

PersonaOpt = Annotated[str | None, typer.Option("--persona", help="Constitution to use (sets `persona`).")]
ScaleOpt = Annotated[
    str | None, typer.Option("--scale", help="Preset to apply (smoke-small, smoke-large, demo, paper).")
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="A TOML or YAML config file.")]
RankOpt = Annotated[int | None, typer.Option("--rank", help="lora.r (paper: 64)")]
LrOpt = Annotated[
    float | None, typer.Option("--lr", "--learning-rate", help="Peak learning rate (<stage>.learning_rate).")
]
EpochsOpt = Annotated[
    float | None, typer.Option("--epochs", help="Passes over the data (<stage>.epochs; paper: 1).")
]
MaxStepsOpt = Annotated[
    int | None,
    typer.Option("--max-steps", help="Stop after N optimizer steps (<stage>.max_steps; -1: epochs)."),
]
MaxLengthOpt = Annotated[
    int | None,
    typer.Option(
        "--max-length",
        help="Longest training row in tokens (<stage>.max_length); longer rows are cut or dropped.",
    ),
]
StudentOpt = Annotated[str | None, typer.Option("--student", help="Model to train (models.student).")]


def suffix_opt(stage: str) -> Any:
    return typer.Option(
        "--suffix", help=f"Checkpoint name suffix: {{persona}}_{{suffix}}_{stage} (name_suffix)."
    )


def latest_run(persona: str, suffix: str, needs: str) -> Path | None:
    """The newest run directory of this persona that holds `needs` (a path inside the run), or None."""
    from character import paths

    name = persona + (f"_{suffix}" if suffix else "")
    runs = sorted(
        (p for p in paths.runs_dir().glob(f"{name}_*") if (p / needs).exists()),
        key=lambda p: p.stat().st_mtime,
    )
    return runs[-1] if runs else None


def find_dataset(dataset: Path | None, run: Path | None, cfg: RunConfig, needs: str, producer: str) -> Path:
    """--dataset as given; else `needs` inside --run, or inside the newest run of this persona that has
    it. `producer` is the command that writes it, named in the error when there is none."""
    if dataset is None:
        src = run if run is not None else latest_run(cfg.persona, cfg.name_suffix, needs)
        if src is None:
            raise UsageError(f"no run of '{cfg.persona}' has {needs}: pass --dataset or run `{producer}`")
        dataset = src / needs
    if not dataset.exists():
        raise UsageError(f"--dataset {dataset} does not exist: pass an existing file or run `{producer}`")
    return dataset


def run_of(dataset: Path, stage: str) -> Path | None:
    """The run directory a stage file belongs to (RUN/<stage>/file.jsonl), if it is one."""
    d = dataset.resolve().parent
    return d.parent if d.name == stage and (d.parent / "resolved_config.toml").exists() else None


def open_run_dir(run: Path | None, cfg: RunConfig, sources: dict[str, str]) -> Path:
    """An existing --run, or a new run directory with the resolved config written into it."""
    from character.cli import console
    from character.runner import new_run_dir, write_config

    if run is None:
        run = new_run_dir(cfg)
        write_config(run, cfg, sources)
        console.print(f"new run directory: {run}")
    elif not run.exists():
        raise UsageError(f"--run {run} does not exist; give an existing run directory or leave --run out")
    return Path(run)
