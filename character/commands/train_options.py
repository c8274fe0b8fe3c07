"""Options `character train dpo|sft` share for how training runs: processes and accelerate config,
multi-node addresses, checkpoints and resume, trackers. Each maps to one `train.*` setting."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from character.commands.run_dirs import open_run_dir, run_of
from character.config import RunConfig
from character.errors import UsageError

NumProcessesOpt = Annotated[
    int | None,
    typer.Option(
        "--num-processes",
        help="Training processes, one per GPU (train.num_processes). Above 1 the stage runs under "
        "`accelerate launch` (gloo on CPU); the configured batch stays the global batch.",
    ),
]
AccelerateConfigOpt = Annotated[
    str | None,
    typer.Option(
        "--accelerate-config",
        help="ddp | zero2 | zero3 (configs/accelerate/) or an accelerate YAML (train.accelerate_config).",
    ),
]
NumMachinesOpt = Annotated[
    int | None, typer.Option("--num-machines", help="Machines in a multi-node launch (train.num_machines).")
]
MachineRankOpt = Annotated[
    int | None,
    typer.Option("--machine-rank", help="This machine's rank, 0 on the main node (train.machine_rank)."),
]
MainIpOpt = Annotated[
    str | None, typer.Option("--main-process-ip", help="Address of machine 0 (train.main_process_ip).")
]
MainPortOpt = Annotated[
    int | None,
    typer.Option(
        "--main-process-port", help="Rendezvous port; 0 picks a free one (train.main_process_port)."
    ),
]
ResumeOpt = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Continue from the last complete checkpoint in the stage's trainer dir (train.resume); "
        "refused if the data or the stage's settings changed.",
    ),
]
SaveStepsOpt = Annotated[
    int | None, typer.Option("--save-steps", help="Checkpoint every N optimizer steps (train.save_steps).")
]
ReportToOpt = Annotated[
    str | None,
    typer.Option(
        "--report-to",
        help="Trackers, comma-separated: tensorboard, wandb, trackio or none (train.report_to). "
        "wandb runs offline unless train.wandb_mode = online.",
    ),
]


# parameter name of each option above -> the `train.*` key it sets
_TRAIN_KEYS = {
    "num_processes": "train.num_processes",
    "accelerate_config": "train.accelerate_config",
    "num_machines": "train.num_machines",
    "machine_rank": "train.machine_rank",
    "main_process_ip": "train.main_process_ip",
    "main_process_port": "train.main_process_port",
    "resume": "train.resume",
    "save_steps": "train.save_steps",
    "report_to": "train.report_to",
}


def train_overrides(params: Mapping[str, Any]) -> dict[str, Any]:
    """The `train.*` overrides these options set (None: not given), from the command's parsed
    parameters (`ctx.params`): the commands name them as above, so the mapping lives here once."""
    out: dict[str, Any] = {key: params.get(name) for name, key in _TRAIN_KEYS.items()}
    out["train.resume"] = True if out["train.resume"] else None
    report_to = out["train.report_to"]
    if report_to is not None:
        out["train.report_to"] = [t.strip() for t in report_to.split(",") if t.strip()]
    return out


def open_training_run(
    run: Path | None, dataset: Path, stage: str, cfg: RunConfig, sources: dict[str, str]
) -> Path:
    """The run dir a training command writes into: --run, else the run `dataset` belongs to (its
    `stage` dir), else a new one. Under a launcher every process must be given the same one, and only
    the main process reports."""
    from character.cli import console
    from character.training.distributed import is_main

    run = run or run_of(dataset, stage)
    require_run_under_launcher(run)
    run_dir = open_run_dir(run, cfg, sources)
    if not is_main():  # inside `accelerate launch -m character train ...`: one process reports
        console.quiet = True
    return run_dir


def require_run_under_launcher(run: Path | None) -> None:
    """Inside `accelerate launch -m character train ...` every process must work in the same run dir."""
    from character.training import distributed

    if run is None and distributed.world_size() > 1:
        raise UsageError(
            "under a multi-process launch every process would open its own new run directory: pass --run "
            "RUN_DIR (or use --num-processes N without accelerate, which launches for you)"
        )
