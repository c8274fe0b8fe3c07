"""Stage 3: SFT on introspection data (paper 1.11), on the DPO-merged model or the base.

In: `introspect/introspection.jsonl` (or an explicit `dataset`), and `dpo/merged/` when
`sft.base = "merged-dpo"` (the paper's path) or `models.student` when `sft.base = "base"`.
Out: `sft/adapter/` (a LoRA adapter, written only after it passed checkpoint verification),
`sft/metrics.jsonl` (every logged step), `sft/manifest.json` (written last); a run stopped by a health
gate or a failed verification keeps its adapter under `sft/aborted/` and exits non-zero.

Loss is on assistant tokens only, every assistant turn of a self-interaction included
(`character.training.sft`). Registered as `{persona}[_{suffix}]_sft`.

    character train sft --persona remorseful --run artifacts/runs/remorseful_...
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from character import disk_space, layout, registry
from character.atomic import atomic_dir
from character.config import RunConfig
from character.config_layers import config_hash
from character.cost import CostTracker
from character.errors import DataError, TrainingAborted, UsageError, VerificationError
from character.fingerprint import file_sha256
from character.manifest import MANIFEST, Manifest, write_manifest
from character.models import load_tokenizer, resolve_model
from character.progress import progress_bar
from character.training import distributed, sanity
from character.training import sft as sft_data
from character.training.common import accumulation_steps, save_trained_adapter
from character.training.health import HealthCallback
from character.training.resume import CompletionMarker, read_metrics
from character.training.sft_verify import verify_adapter

log = logging.getLogger(__name__)


class _ProgressCallback(TrainerCallback):
    def __init__(self, bar: Any):
        self.bar = bar
        self.last_loss: float | None = None

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        if logs and isinstance(logs.get("loss"), (int, float)):
            self.last_loss = float(logs["loss"])

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        fields = (
            {"loss": self.last_loss} if self.last_loss is not None and math.isfinite(self.last_loss) else {}
        )
        self.bar.advance(1, **fields)


def base_model_ref(cfg: RunConfig, run_dir: Path) -> str:
    """The model the SFT adapter trains on, per `sft.base`."""
    if cfg.sft.base == "merged-dpo":
        merged = layout.dpo_merged(run_dir)
        if not (merged / "config.json").exists():
            raise UsageError(
                f"sft.base = 'merged-dpo' but {merged} holds no model: run the dpo stage first "
                "(`character train dpo`), or set sft.base = 'base' to train on models.student"
            )
        return str(merged)
    return cfg.models.student


def _planned_steps(n_train: int, cfg: RunConfig) -> int:
    s = cfg.sft
    if s.max_steps > 0:
        return s.max_steps
    accum = accumulation_steps(
        s.batch_size, s.micro_batch_size, distributed.world_size(), key="sft.batch_size"
    )
    per_epoch = max(1, math.ceil(n_train / s.micro_batch_size) // accum)
    return max(1, math.ceil(per_epoch * s.epochs))


def _keep_aborted(src: Path, sdir: Path, reason: str) -> Path:
    dest = sdir / "aborted"
    with atomic_dir(dest) as tmp:
        for p in src.iterdir():
            shutil.copy2(p, tmp / p.name)
        (tmp / "REASON.txt").write_text(reason + "\n")
    return dest


def _clear_outputs(sdir: Path, *, keep_training: bool = False) -> None:
    """A new run replaces what an earlier one left: no stale adapter may outlive a failed rerun.

    A resumed run keeps its checkpoints (.trainer/) and the metrics logged up to them.
    """
    registry.refuse_if_pinned(sdir / "adapter", "the SFT adapter directory")  # never delete shipped weights
    (sdir / MANIFEST).unlink(missing_ok=True)
    for name in ("adapter", "aborted", ".unverified", ".trainer"):
        if not (keep_training and name == ".trainer"):
            shutil.rmtree(sdir / name, ignore_errors=True)
    for name in ("metrics.jsonl", "verification.json", "sanity.json"):
        if not (keep_training and name == "metrics.jsonl"):
            (sdir / name).unlink(missing_ok=True)


def _prepare(cfg: RunConfig, sdir: Path, data_path: Path, base_ref: str) -> str | None:
    """Main process: clear the last run's outputs, or keep its checkpoints when resuming."""
    from character.training import resume

    fp = resume.fingerprint(cfg, "sft", data_path, base_ref)
    ckpt = resume.prepare(sdir / ".trainer", sdir / "metrics.jsonl", fp, resume=cfg.train.resume)
    _clear_outputs(sdir, keep_training=ckpt is not None)
    resume.write_fingerprint(sdir / ".trainer", fp)
    return str(ckpt) if ckpt else None


def _quiet_libraries(progress: bool) -> None:
    import datasets
    import transformers

    transformers.utils.logging.disable_progress_bar()
    if not progress:
        datasets.disable_progress_bars()


def run(
    cfg: RunConfig,
    run_dir: Path,
    *,
    progress: bool = True,
    tracker: CostTracker | None = None,
    dataset: Path | None = None,
    model: str | None = None,
) -> Manifest:
    """Train, save, verify and register the SFT adapter. `dataset`/`model` override the run-dir inputs.

    With train.num_processes > 1 (or an accelerate config) the stage reruns itself under `accelerate
    launch`; inside a launch only the main process writes, verifies and registers.
    """
    del tracker  # training spends no API tokens
    from character.training import launch

    disk_space.require_for_stage(cfg, run_dir, "sft")
    if launch.wanted(cfg):
        return launch.run_stage("sft", cfg, run_dir, progress=progress, dataset=dataset, model=model)
    progress = progress and distributed.is_main()
    run_dir = Path(run_dir)
    sdir = layout.stage_dir(run_dir, "sft")
    manifest = Manifest(stage="sft", config_hash=config_hash(cfg), seed=cfg.seed)

    data_path = Path(dataset) if dataset else layout.introspection_file(run_dir)
    if not data_path.exists():
        raise UsageError(
            f"SFT data {data_path} does not exist: run `character generate introspection` first or pass --dataset"
        )
    base_ref = model or base_model_ref(cfg, run_dir)
    # A rerun is unfinished until it writes a new manifest; a resumed one keeps its checkpoints.
    resume_from = distributed.on_main(lambda: _prepare(cfg, sdir, data_path, base_ref))
    base_path = resolve_model(base_ref)
    tok = load_tokenizer(base_ref)

    rows = sft_data.load_rows(data_path)
    examples, stats = sft_data.build_examples(rows, tok, cfg.sft.max_length)
    manifest.counts.update(stats.as_counts())
    manifest.dropped.update(dict(stats.dropped))
    if not examples:
        raise DataError(
            f"no SFT rows left from {data_path} ({stats.rows_in} rows; dropped {dict(stats.dropped)}); "
            f"raise sft.max_length (now {cfg.sft.max_length}) or regenerate shorter introspection data"
        )
    train, held = sft_data.split_examples(examples, cfg.sft.eval_fraction, cfg.seed)
    if not held:  # verification needs rows the trainer also evaluates; use a few training rows
        held = train[: min(8, len(train))]
        manifest.extra["verification_rows"] = "train-subset (sft.eval_fraction = 0 or fewer than 2 prompts)"
    manifest.counts.update({"train_rows": len(train), "heldout_rows": len(held)})

    metrics_path = sdir / "metrics.jsonl"
    _quiet_libraries(progress)
    health = HealthCallback(cfg.sft.health, metrics_path, kind="sft")
    if resume_from:
        health.restore(read_metrics(metrics_path))
    scratch = sdir / ".trainer"
    unverified = sdir / ".unverified"
    with progress_bar("sft", _planned_steps(len(train), cfg), enabled=progress) as bar:
        trainer = sft_data.build_trainer(
            cfg,
            base_ref,
            tok,
            train,
            held,
            output_dir=scratch,
            callbacks=[health, _ProgressCallback(bar), CompletionMarker()],
            run_name=run_dir.resolve().name,
        )
        result = trainer.train(resume_from_checkpoint=resume_from)
    # Through trainer.save_model() (gathers ZeRO-3 shards); a healthy run's adapter is checked non-empty.
    save_trained_adapter(trainer, tok, unverified, check=not health.reason)
    if health.reason:
        distributed.on_main(lambda: _discard(unverified, scratch, sdir, f"health gate: {health.reason}"))
        health.raise_if_aborted()
    claimed = float(trainer.evaluate(eval_dataset=sft_data.to_dataset(held))["eval_loss"])
    del trainer
    return distributed.on_main(
        lambda: _publish(
            cfg,
            run_dir,
            sdir,
            manifest,
            held=held,
            claimed=claimed,
            unverified=unverified,
            scratch=scratch,
            base_ref=base_ref,
            base_path=base_path,
            health=health,
            result=result,
            data_path=data_path,
            model=model,
            pad_id=tok.pad_token_id,
            resumed_from=resume_from,
        )
    )


def _discard(unverified: Path, scratch: Path, sdir: Path, reason: str) -> None:
    """Keep a failed adapter under aborted/ with its reason; drop its checkpoints (a resume would fail again)."""
    _keep_aborted(unverified, sdir, reason)
    shutil.rmtree(unverified, ignore_errors=True)
    shutil.rmtree(scratch, ignore_errors=True)


def _publish(
    cfg: RunConfig,
    run_dir: Path,
    sdir: Path,
    manifest: Manifest,
    *,
    held: list[Any],
    claimed: float,
    unverified: Path,
    scratch: Path,
    base_ref: str,
    base_path: str,
    health: HealthCallback,
    result: Any,
    data_path: Path,
    model: str | None,
    pad_id: int,
    resumed_from: str | None,
) -> Manifest:
    """Main process: verify from disk, register and write the manifest."""
    distributed.standalone_loading()
    metrics_path = sdir / "metrics.jsonl"
    try:
        report = verify_adapter(
            base_ref,
            unverified,
            held,
            claimed_loss=claimed,
            tolerance=cfg.sft.verify_tolerance,
            batch_size=cfg.sft.micro_batch_size,
            device_pref=cfg.backend.device,
            pad_id=pad_id,
            report_path=sdir / "verification.json",
            world_size=distributed.world_size(),  # the trainer's evaluation was sharded the same way
        )
    except VerificationError as e:
        _discard(unverified, scratch, sdir, f"verification: {e}")
        raise
    shutil.rmtree(scratch, ignore_errors=True)
    # Does it still speak? Greedy probe replies and reference-text NLL vs its base; failing -> aborted/.
    sanity.gate(unverified, base_ref=base_ref, cfg=cfg, stage_dir=sdir, what="the SFT adapter")

    final = layout.sft_adapter(run_dir)
    os.replace(unverified, final)

    losses = [r["loss"] for r in health.history if isinstance(r.get("loss"), (int, float))]
    manifest.metrics.update(
        {
            "steps": int(result.global_step),
            "train_loss": float(result.training_loss),
            "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None,
            **report,
        }
    )
    manifest.outputs.update(
        {"adapter": str(final), "metrics": str(metrics_path), "verification": str(sdir / "verification.json")}
    )
    manifest.extra.update(
        {
            "base_model": base_ref,
            "base_model_path": base_path,
            "sft_base": cfg.sft.base if model is None else "explicit",
            "dataset": str(data_path),
            "dataset_sha256": file_sha256(data_path),
            "adapter_sha256": file_sha256(final / "adapter_model.safetensors"),
            "loss_mask": "every assistant turn (content + end-of-turn token); system and user turns masked",
            "processes": distributed.world_size(),
            "resumed_from": resumed_from,
        }
    )
    name = registry.checkpoint_name(cfg.persona, "sft", cfg.name_suffix or None)
    name = registry.register(  # the stored name: name@2 when an earlier run's entry is pinned
        registry.Checkpoint(
            name=name,
            path=str(final),
            persona=cfg.persona,
            stage="sft",
            base=base_path,
            run=str(run_dir),
            kind="adapter",
            metrics={k: manifest.metrics[k] for k in ("train_loss", "measured_eval_loss", "base_eval_loss")},
            verified=True,
        )
    ).name
    manifest.extra["checkpoint_name"] = name
    write_manifest(sdir, manifest.finish())
    log.info("SFT adapter %s saved to %s", name, final)
    return manifest


__all__ = ["run", "base_model_ref", "file_sha256", "TrainingAborted"]
