"""Health gates for training: a TrainerCallback that writes every log to metrics.jsonl and stops bad runs.

Immediate abort: any non-finite loss, grad norm, reward or log-prob (transformers hides a NaN step
loss behind a running average unless `logging_nan_inf_filter=False`, which `training_args_guard`
checks). After `warmup_logs` logged steps: loss above `max_loss`, DPO reward accuracy below the
minimum, DPO margins exactly zero (the adapter is not training), or a loss flat for `flat_window`
logs. The callback only sets `should_training_stop`; the stage calls `raise_if_aborted()` after
`train()` returns, so an aborted adapter is never saved under the name a later stage would pick up.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from character.config import HealthConfig
from character.errors import ConfigError, TrainingAborted

_WATCHED_PREFIXES = ("loss", "grad_norm", "rewards/", "logps/", "eval_loss", "train_loss")


def training_args_guard(args: Any) -> None:
    if getattr(args, "logging_nan_inf_filter", True):
        raise ConfigError(
            "training args keep logging_nan_inf_filter=True, which hides NaN losses; set it to False"
        )


class HealthCallback(TrainerCallback):
    def __init__(self, health: HealthConfig, metrics_path: Path, *, kind: str):
        self.health = health
        self.kind = kind  # "dpo" or "sft"
        self.metrics_path = Path(metrics_path)
        self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
        self.reason: str | None = None
        self.history: list[dict[str, Any]] = []
        self._flat = 0

    # -- transformers hook ------------------------------------------------------------------------
    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        if not logs:
            return
        row = {"step": state.global_step, **{k: _jsonable(v) for k, v in logs.items()}}
        if state.is_world_process_zero:  # logs are already reduced across processes: write them once
            with open(self.metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")
                f.flush()
                os.fsync(f.fileno())
        if "loss" not in logs and not any(k.startswith("rewards/") for k in logs):
            return  # eval or summary logs: recorded, not judged
        self.history.append(row)
        reason = self.check(row)
        if reason and self.reason is None:
            self.reason = f"step {state.global_step}: {reason}"
            control.should_training_stop = True

    def restore(self, rows: list[dict[str, Any]]) -> None:
        """Continue from a resumed run's logged rows (up to its checkpoint): the gates' history goes on."""
        for row in rows:
            if "loss" not in row and not any(k.startswith("rewards/") for k in row):
                continue
            self.history.append(row)
            self.check(row)  # replays the rules' running state (flat counter, ...); these steps passed

    # -- rules ------------------------------------------------------------------------------------
    def check(self, row: dict[str, Any]) -> str | None:
        for k, v in row.items():
            if k.startswith(_WATCHED_PREFIXES) and isinstance(v, (int, float, str)) and not _finite(v):
                return f"non-finite {k} = {v}"
        n = len(self.history)
        loss = row.get("loss")
        if n > 1 and isinstance(loss, (int, float)):
            prev = self.history[-2].get("loss")
            if isinstance(prev, (int, float)) and prev != 0:
                rel = abs(loss - prev) / abs(prev)
                self._flat = self._flat + 1 if rel < self.health.flat_rel_change else 0
        if n <= self.health.warmup_logs:
            return None
        if isinstance(loss, (int, float)) and loss > self.health.max_loss:
            return f"loss {loss:.4f} > {self.health.max_loss} after warm-up"
        if self._flat >= self.health.flat_window:
            return (
                f"loss flat (relative change < {self.health.flat_rel_change}) for {self._flat} logged steps"
            )
        if self.kind == "dpo":
            acc = row.get("rewards/accuracies")
            if isinstance(acc, (int, float)) and acc < self.health.min_reward_accuracy:
                return f"reward accuracy {acc:.3f} < {self.health.min_reward_accuracy} after warm-up"
            margin = row.get("rewards/margins")
            if margin == 0 and row.get("rewards/chosen") == 0 and row.get("rewards/rejected") == 0:
                return "reward margins exactly 0 after warm-up: the adapter is not training"
        return None

    def raise_if_aborted(self) -> None:
        if self.reason:
            raise TrainingAborted(
                f"{self.kind} training aborted at {self.reason} (metrics: {self.metrics_path})"
            )


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return True


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # "nan"/"inf": JSON has no literal for them
    if hasattr(v, "item"):
        return _jsonable(v.item())
    return v
