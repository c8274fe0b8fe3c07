"""Stage 1b, DPO training: pairs -> LoRA adapter -> verified from disk -> merged model for the next stage.

In: `distill/pairs.jsonl` (or an explicit `dataset=`), the resolved config (`models.student` is the
model trained; `lora.*`, `dpo.*`). Rows whose rendered prompt alone reaches `dpo.max_length` are
dropped here, with a count (TRL would drop them silently). A seeded `dpo.eval_fraction` of the pairs
is held out by prompt (a prompt's k samples and repeats of its text stay on one side). Training is
TRL's DPOTrainer with a fresh LoRA, the reference being the base with the adapter disabled; the
health callback writes every logged step to `dpo/metrics.jsonl` and stops a bad run at once
(non-finite values, collapse; `character.training.health`).

Out (run_dir/dpo/):
- on success: `adapter/` (saved, then re-loaded from disk into a fresh base whose held-out loss and
  reward accuracy must match the trainer's claims: `verify.json`), `merged/` (base + adapter merged
  exactly in fp32), `sanity.json` (the sanity probe against the base, `character.training.sanity`),
  `manifest.json`, and the registry entry `{persona}[_{suffix}]_dpo` (verified).
- on a health abort, a failed verification or a failed sanity probe: the adapter under `aborted/`
  with `REASON.txt`, nothing under `adapter/`, `merged/` or the registry name, no manifest, and exit 1.

Run it with `character train dpo --persona remorseful --dataset pairs.jsonl` or in `character pipeline`.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from character import disk_space, layout, registry
from character.atomic import atomic_write_text
from character.config import RunConfig
from character.config_layers import config_hash
from character.cost import CostTracker
from character.errors import VerificationError
from character.manifest import MANIFEST, Manifest, write_manifest
from character.records import read_jsonl
from character.training import distributed, sanity
from character.training.common import save_trained_adapter
from character.training.split import split_pairs

log = logging.getLogger(__name__)


def _quiet_libraries(progress: bool) -> None:
    import datasets
    import transformers

    transformers.utils.logging.disable_progress_bar()
    if not progress:
        import huggingface_hub.utils

        datasets.disable_progress_bars()
        huggingface_hub.utils.disable_progress_bars()


def _abort(sd: Path, trainer: Any, tokenizer: Any, reason: str) -> Path:
    """Keep the failed adapter for inspection under aborted/, never where a later stage would look.

    Every process calls this (saving gathers sharded weights); only the main one writes.
    """
    dest = save_trained_adapter(trainer, tokenizer, sd / "aborted", check=False)
    distributed.on_main(lambda: atomic_write_text(dest / "REASON.txt", reason + "\n"))
    return dest


def _clear_outputs(sd: Path, *, keep_training: bool = False) -> None:
    """A new training run replaces everything a previous one in this directory left behind.

    A resumed run keeps its checkpoints (trainer/) and the metrics logged up to them.
    """
    for name in ("adapter", "merged"):  # shipped weights are never deleted by a re-run
        registry.refuse_if_pinned(sd / name, f"the DPO {name} directory")
    (sd / MANIFEST).unlink(missing_ok=True)
    for name in ("adapter", "merged", "aborted", ".adapter.unverified", "trainer"):
        if (sd / name).exists() and not (keep_training and name == "trainer"):
            shutil.rmtree(sd / name)
    for name in ("metrics.jsonl", "verify.json", "sanity.json"):
        if not (keep_training and name == "metrics.jsonl"):
            (sd / name).unlink(missing_ok=True)


def _prepare(cfg: RunConfig, sd: Path, src: Path) -> str | None:
    """Main process: clear the last run's outputs, or keep its checkpoints when resuming. The checkpoint
    to resume from (or None)."""
    from character.training import resume

    fp = resume.fingerprint(cfg, "dpo", src, cfg.models.student)
    ckpt = resume.prepare(sd / "trainer", sd / "metrics.jsonl", fp, resume=cfg.train.resume)
    _clear_outputs(sd, keep_training=ckpt is not None)
    resume.write_fingerprint(sd / "trainer", fp)
    return str(ckpt) if ckpt else None


def run(
    cfg: RunConfig,
    run_dir: Path,
    *,
    progress: bool = True,
    tracker: CostTracker | None = None,
    dataset: Path | None = None,
) -> Manifest:
    """Train, verify, merge and register the DPO adapter. Raises TrainingAborted / VerificationError.

    With train.num_processes > 1 (or an accelerate config) the stage reruns itself under `accelerate
    launch`; inside a launch only the main process writes, verifies, merges and registers.
    """
    from character.training import launch

    disk_space.require_for_stage(cfg, run_dir, "dpo")
    if launch.wanted(cfg):
        return launch.run_stage("dpo", cfg, run_dir, progress=progress, dataset=dataset)
    import torch

    from character.models import load_tokenizer
    from character.training.dpo import build_trainer, drop_long_prompts, trl_pair
    from character.training.resume import read_metrics, start_step

    progress = progress and distributed.is_main()
    _quiet_libraries(progress)
    manifest = Manifest(stage="dpo", config_hash=config_hash(cfg), seed=cfg.seed)
    sd = layout.stage_dir(run_dir, "dpo")
    src = Path(dataset) if dataset else layout.pairs_file(run_dir)
    rows = [
        trl_pair(r, f"{src}:{i + 1}") | {"k": r.get("k"), "prompt_id": r.get("prompt_id")}
        for i, r in enumerate(read_jsonl(src))
    ]
    resume_from = distributed.on_main(lambda: _prepare(cfg, sd, src))
    base_ref = cfg.models.student
    tok = load_tokenizer(base_ref)
    usable, n_long = drop_long_prompts(rows, tok, cfg.dpo.max_length)
    if n_long:
        log.warning(
            "dropped %d of %d pairs whose prompt alone reaches dpo.max_length %d",
            n_long,
            len(rows),
            cfg.dpo.max_length,
        )
    # By prompt: a held-out prompt has no k sibling or repeated text in training (training.split).
    train_rows, eval_rows = split_pairs(usable, cfg.dpo.eval_fraction, cfg.seed)

    torch.manual_seed(cfg.seed)
    trainer, health = build_trainer(
        cfg,
        base_ref,
        train_rows,
        eval_rows,
        output_dir=sd / "trainer",
        metrics_path=sd / "metrics.jsonl",
        tokenizer=tok,
        run_name=Path(run_dir).resolve().name,
    )
    if resume_from:
        health.restore(read_metrics(sd / "metrics.jsonl"))
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from)
    train_s = time.perf_counter() - t0
    if health.reason:
        dest = _abort(sd, trainer, tok, f"health gate: {health.reason}")
        log.error("DPO training aborted; its adapter is kept for inspection at %s", dest)
        health.raise_if_aborted()

    claimed = {k: float(v) for k, v in trainer.evaluate().items() if isinstance(v, (int, float))}
    # Through trainer.save_model() (gathers ZeRO-3 shards), then checked for empty LoRA tensors.
    staging = save_trained_adapter(trainer, tok, sd / ".adapter.unverified")
    steps = trainer.state.global_step
    started_at = start_step(trainer)
    last: dict[str, Any] = next((h for h in reversed(health.history) if "loss" in h), {})
    del trainer  # free the training copy before loading a fresh one
    return distributed.on_main(
        lambda: _publish(
            cfg,
            run_dir,
            sd,
            manifest,
            tok=tok,
            src=src,
            rows=rows,
            n_long=n_long,
            train_rows=train_rows,
            eval_rows=eval_rows,
            claimed=claimed,
            staging=staging,
            steps=steps,
            last=last,
            train_s=train_s,
            resumed_from=resume_from,
            started_at=started_at,
        )
    )


def _publish(
    cfg: RunConfig,
    run_dir: Path,
    sd: Path,
    manifest: Manifest,
    *,
    tok: Any,
    src: Path,
    rows: list[dict[str, Any]],
    n_long: int,
    train_rows: list[dict[str, Any]],
    eval_rows: list[dict[str, Any]],
    claimed: dict[str, float],
    staging: Path,
    steps: int,
    last: dict[str, Any],
    train_s: float,
    resumed_from: str | None,
    started_at: int | None,
) -> Manifest:
    """Main process: verify from disk, merge, register and write the manifest."""
    from character.training.dpo import merge_adapter
    from character.training.verify import verify_dpo_adapter, write_report

    distributed.standalone_loading()
    base_ref = cfg.models.student

    report, measured = verify_dpo_adapter(
        base_ref=base_ref,
        adapter_dir=staging,
        tokenizer=tok,
        rows=eval_rows,
        claimed=claimed,
        beta=cfg.dpo.beta,
        loss=cfg.dpo.loss,
        nll_weight=cfg.dpo.nll_weight,
        max_length=cfg.dpo.max_length,
        batch_size=cfg.dpo.micro_batch_size,
        tolerance=cfg.dpo.verify_tolerance,
        device_pref=cfg.backend.device,
        world_size=distributed.world_size(),  # the trainer's evaluation was sharded the same way
    )
    write_report(sd / "verify.json", report)
    if not report.passed:
        shutil.rmtree(sd / "aborted", ignore_errors=True)
        staging.rename(sd / "aborted")
        atomic_write_text(sd / "aborted" / "REASON.txt", "verification failed: " + report.summary() + "\n")
        report.raise_if_failed(f"the adapter is kept at {sd / 'aborted'}")
    # Does it still speak? Greedy probe replies and reference-text NLL vs the base; failing -> aborted/.
    sanity.gate(staging, base_ref=base_ref, cfg=cfg, stage_dir=sd, what="the DPO adapter")
    staging.rename(layout.dpo_adapter(run_dir))

    from character.chat import encode

    probe = encode(tok, eval_rows[0]["prompt"] + eval_rows[0]["chosen"], add_generation_prompt=False)
    gap = merge_adapter(base_ref, layout.dpo_adapter(run_dir), layout.dpo_merged(run_dir), probe=probe)
    if gap > 1e-3:
        shutil.rmtree(layout.dpo_merged(run_dir), ignore_errors=True)
        raise VerificationError(
            f"merging the DPO adapter changed the model's logits by {gap:.2e} (> 1e-3): merged model not kept"
        )

    name = registry.checkpoint_name(cfg.persona, "dpo", cfg.name_suffix or None)
    metrics = {
        "claimed": {
            k: claimed[k]
            for k in ("eval_loss", "eval_rewards/accuracies", "eval_rewards/margins")
            if k in claimed
        },
        "measured": measured,
        "final_train": {k: last[k] for k in ("loss", "rewards/accuracies", "rewards/margins") if k in last},
        "merge_max_logit_gap": gap,
    }
    name = registry.register(  # the stored name: name@2 when an earlier run's entry is pinned
        registry.Checkpoint(
            name=name,
            path=str(layout.dpo_adapter(run_dir).resolve()),
            persona=cfg.persona,
            stage="dpo",
            base=base_ref,
            run=str(Path(run_dir).resolve()),
            kind="adapter",  # the merge stage resolves this name to the adapter; merged/ is in metrics
            metrics={**metrics, "merged": str(layout.dpo_merged(run_dir).resolve())},
            verified=True,
        )
    ).name
    manifest.counts = {
        "pairs_in": len(rows),
        "dropped_prompt_too_long": n_long,
        "train_pairs": len(train_rows),
        "heldout_pairs": len(eval_rows),
        "steps": steps,
    }
    manifest.dropped = {"prompt_too_long": n_long} if n_long else {}
    manifest.metrics = metrics | {"train_s": round(train_s, 2)}
    manifest.outputs = {
        "adapter": str(layout.dpo_adapter(run_dir)),
        "merged": str(layout.dpo_merged(run_dir)),
        "metrics": str(sd / "metrics.jsonl"),
        "verify": str(sd / "verify.json"),
        "dataset": str(src),
    }
    manifest.extra = {
        "checkpoint": name,
        "base": base_ref,
        "loss": cfg.dpo.loss,
        "processes": distributed.world_size(),
        "resumed_from": resumed_from,
        "started_at_step": started_at,
    }
    shutil.rmtree(sd / "trainer", ignore_errors=True)
    write_manifest(sd, manifest.finish())
    return manifest
