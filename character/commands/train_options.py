"""Options `character train dpo|sft` share for how training runs: processes and accelerate config,
multi-node addresses, checkpoints and resume, trackers. Each maps to one `train.*` setting."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

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


def train_overrides(
    *,
    num_processes: int | None,
    accelerate_config: str | None,
    num_machines: int | None,
    machine_rank: int | None,
    main_process_ip: str | None,
    main_process_port: int | None,
    resume: bool,
    save_steps: int | None,
    report_to: str | None,
) -> dict[str, Any]:
    """The `train.*` overrides these options set (None: not given)."""
    trackers = [t.strip() for t in report_to.split(",") if t.strip()] if report_to is not None else None
    return {
        "train.num_processes": num_processes,
        "train.accelerate_config": accelerate_config,
        "train.num_machines": num_machines,
        "train.machine_rank": machine_rank,
        "train.main_process_ip": main_process_ip,
        "train.main_process_port": main_process_port,
        "train.resume": True if resume else None,
        "train.save_steps": save_steps,
        "train.report_to": trackers,
    }


def require_run_under_launcher(run: Path | None) -> None:
    """Inside `accelerate launch -m character train ...` every process must work in the same run dir."""
    from character.training import distributed

    if run is None and distributed.world_size() > 1:
        raise UsageError(
            "under a multi-process launch every process would open its own new run directory: pass --run "
            "RUN_DIR (or use --num-processes N without accelerate, which launches for you)"
        )
