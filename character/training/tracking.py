"""Experiment trackers for the trainers: `train.report_to` = tensorboard, wandb, trackio or none.

`metrics.jsonl` is always written (the health gates read it); trackers are extra views of the same logs.
The run name is the run directory's name. Tensorboard events go to `<stage>/tensorboard/` inside the run
(the trainer's own scratch dir is deleted when a stage finishes); wandb writes to `<stage>/wandb/` in
`train.wandb_mode` (offline by default: no network, `wandb sync` uploads later). A `WANDB_*`
variable already set in the environment wins. Only the main process of a launch reports.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from character.errors import ConfigError

_PACKAGES = {
    "wandb": ("wandb", "pip install 'character[wandb]'"),
    "trackio": ("trackio", "pip install trackio"),
}


def check_trackers(report_to: Sequence[str]) -> list[str]:
    """The trackers to pass to transformers, each checked to be installed (one clear line if not)."""
    wanted = [t for t in report_to if t != "none"]
    for t in wanted:
        if t == "tensorboard":
            from transformers.integrations import is_tensorboard_available

            if not is_tensorboard_available():
                raise ConfigError(
                    "train.report_to includes 'tensorboard' but neither tensorboardX nor tensorboard is "
                    "installed: pip install tensorboardX, or remove it from train.report_to"
                )
        elif t in _PACKAGES:
            pkg, fix = _PACKAGES[t]
            if importlib.util.find_spec(pkg) is None:
                raise ConfigError(
                    f"train.report_to includes '{t}' but the {pkg} package is not installed: {fix}, "
                    "or remove it from train.report_to"
                )
    return wanted


def configure(train: Any, stage_dir: Path) -> None:
    """Environment the wandb integration reads at the start of training (set before the trainer)."""
    if "wandb" not in train.report_to:
        return
    (Path(stage_dir) / "wandb").mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WANDB_MODE", train.wandb_mode)
    os.environ.setdefault("WANDB_PROJECT", "character")
    if "WANDB_DIR" not in _USER_ENV:
        os.environ["WANDB_DIR"] = str(Path(stage_dir) / "wandb")


def point(trainer: Any, stage_dir: Path) -> None:
    """Send tensorboard events into the stage dir (transformers' default is inside the scratch dir)."""
    from transformers.integrations import TensorBoardCallback

    for cb in trainer.callback_handler.callbacks:
        if isinstance(cb, TensorBoardCallback) and cb.tb_writer is None:
            cb.logging_dir = str(Path(stage_dir) / "tensorboard")


def event_files(stage_dir: Path) -> list[Path]:
    return sorted((Path(stage_dir) / "tensorboard").rglob("events.out.tfevents.*"))


_USER_ENV = {k for k in os.environ if k.startswith("WANDB_")}
