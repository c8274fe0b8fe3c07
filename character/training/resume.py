"""Resumable training: complete checkpoints, a fingerprint that says what they belong to, and a health
history that continues where the killed run stopped.

The trainer writes `checkpoint-N/` (adapter, optimizer, scheduler, RNG, trainer state) into the stage's
trainer dir every `train.save_steps` steps. A SIGKILL can land in the middle of that write, so
`CompletionMarker` adds `COMPLETE` once every process has finished its part, and only marked
checkpoints are resumed from. `fingerprint.json` in the same dir records the stage's config keys
and the sha256 of its dataset: resuming after either changed would continue a different run, and is
refused with the keys that differ.

On resume, `metrics.jsonl` is cut back to the checkpoint's step (the killed run logged some steps past
it, which the resumed run logs again) and those rows are replayed into the health callback, so every
step is logged exactly once and the gates judge the whole run, not just its second half.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from character.atomic import atomic_write_json, atomic_write_text
from character.errors import ConfigError
from character.fingerprint import file_sha256
from character.training import distributed

log = logging.getLogger(__name__)

COMPLETE = "COMPLETE"
FINGERPRINT = "fingerprint.json"
_PREFIX = "checkpoint-"


class CompletionMarker(TrainerCallback):
    """Marks a checkpoint complete after every process has written its share (RNG state is per rank).

    Also notes the step training started from in this process (`start_step`: 0, or the resumed
    checkpoint's step), which the stage records in its manifest.
    """

    start_step: int | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.start_step = int(state.global_step)

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        distributed.barrier()
        if state.is_world_process_zero:
            ckpt = Path(args.output_dir) / f"{_PREFIX}{state.global_step}"
            if ckpt.is_dir():
                atomic_write_text(ckpt / COMPLETE, f"{state.global_step}\n")


def start_step(trainer: Any) -> int | None:
    """The step this process's training started from (see CompletionMarker)."""
    for cb in trainer.callback_handler.callbacks:
        if isinstance(cb, CompletionMarker):
            return cb.start_step
    return None


def fingerprint(cfg: Any, stage: str, dataset: Path, base: str) -> dict[str, Any]:
    """What a checkpoint belongs to: the stage's config keys, its dataset's sha256 and its base model."""
    from character.runner import flat_values, stage_keys

    return {
        "stage": stage,
        "base": base,
        "dataset": str(dataset),
        "dataset_sha256": file_sha256(dataset),
        "config": flat_values(cfg, stage_keys(stage)),
    }


def _step(p: Path) -> int:
    try:
        return int(p.name[len(_PREFIX) :])
    except ValueError:
        return -1


def last_complete_checkpoint(trainer_dir: Path) -> Path | None:
    """The highest-numbered checkpoint that has its COMPLETE marker (torn ones are ignored)."""
    if not Path(trainer_dir).is_dir():
        return None
    done = [p for p in Path(trainer_dir).glob(f"{_PREFIX}*") if _step(p) >= 0 and (p / COMPLETE).exists()]
    return max(done, key=_step) if done else None


def checkpoint_step(ckpt: Path) -> int:
    return _step(ckpt)


def prepare(
    trainer_dir: Path,
    metrics_path: Path,
    print_: dict[str, Any],
    *,
    resume: bool,
) -> Path | None:
    """Main process only. Returns the checkpoint to resume from, or None for a fresh start.

    Fresh start: the trainer dir and metrics are the caller's to clear. Resume: refuses a changed
    fingerprint, drops torn checkpoints, cuts metrics.jsonl back to the checkpoint's step, and writes
    the fingerprint for the next resume.
    """
    trainer_dir = Path(trainer_dir)
    ckpt = last_complete_checkpoint(trainer_dir) if resume else None
    if resume and ckpt is None:
        log.info("resume: no complete checkpoint in %s; training from the start", trainer_dir)
    if ckpt is not None:
        old = _read_json(trainer_dir / FINGERPRINT)
        diff = _differences(old, print_)
        if diff:
            raise ConfigError(
                f"cannot resume from {ckpt}: {'; '.join(diff)} changed since it was written; rerun without "
                "--resume (train.resume = false) to start this stage over"
            )
        step = checkpoint_step(ckpt)
        for p in trainer_dir.glob(f"{_PREFIX}*"):
            if _step(p) > step or not (p / COMPLETE).exists():
                log.warning("resume: removing torn or later checkpoint %s", p)
                shutil.rmtree(p, ignore_errors=True)
        kept = cut_metrics(metrics_path, step)
        log.info("resuming from %s (step %d; %d metrics rows kept)", ckpt, step, kept)
        return ckpt
    return None


def write_fingerprint(trainer_dir: Path, print_: dict[str, Any]) -> None:
    atomic_write_json(Path(trainer_dir) / FINGERPRINT, print_)


def cut_metrics(metrics_path: Path, step: int) -> int:
    """Keep the rows of metrics.jsonl logged at or before `step` (a torn last line is dropped too)."""
    if not metrics_path.exists():
        return 0
    kept = []
    for line in metrics_path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
            kept.append(json.dumps(row))
    atomic_write_text(metrics_path, "".join(x + "\n" for x in kept))
    return len(kept)


def read_metrics(metrics_path: Path) -> list[dict[str, Any]]:
    if not metrics_path.exists():
        return []
    return [json.loads(x) for x in metrics_path.read_text().splitlines() if x.strip()]


def _read_json(p: Path) -> dict[str, Any]:
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    if not old:
        return ["the checkpoint has no fingerprint.json (it was not written by this version)"]
    out = [
        f"{k} ({old.get(k)!r} -> {new.get(k)!r})"
        for k in ("stage", "base", "dataset_sha256")
        if old.get(k) != new.get(k)
    ]
    oc, nc = old.get("config", {}), new.get("config", {})
    out += [
        f"{k} ({oc.get(k)!r} -> {nc.get(k)!r})" for k in sorted(set(oc) | set(nc)) if oc.get(k) != nc.get(k)
    ]
    return out


def remove_trainer_dir(trainer_dir: Path) -> None:
    if Path(trainer_dir).exists():
        shutil.rmtree(trainer_dir, ignore_errors=True)


__all__ = [
    "CompletionMarker",
    "prepare",
    "write_fingerprint",
    "last_complete_checkpoint",
    "cut_metrics",
    "fingerprint",
    "read_metrics",
]
