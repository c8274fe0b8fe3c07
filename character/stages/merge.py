"""Final stage before evaluation: the exact merge W = W_base + w_dpo·ΔW_dpo + w_sft·ΔW_sft (paper 1.12).

In: `dpo/adapter/`, `sft/adapter/` (or explicit adapter paths / registry names), the base model
(`models.student` unless given) and the weights `merge.dpo_weight` / `merge.sft_weight` (paper: 1.0 /
0.25). Out: `merge/model/` (a full safetensors model with tokenizer and chat template, written
atomically), optionally `merge/adapter/` (one LoRA equal to the same sum, `merge.as_adapter`), a
`merge.json` provenance file inside the model (base, adapter hashes and weights) and
`merge/manifest.json`. Registered as `{persona}[_{suffix}]_merged`.

The SFT adapter was trained on the DPO-merged model; adding its delta to base + ΔW_dpo is therefore
the model it was trained on plus a scaled version of its own update, which is what the paper shipped.
After saving, every touched matrix is read back from disk and compared with the float64 sum: a merge
that does not equal the stated formula fails instead of shipping. Before it is registered, the sanity
probe (`character.training.sanity`) compares the merged model with the base (`merge/sanity.json`); a
model that no longer speaks is moved to `merge/aborted/` with `REASON.txt` and nothing is registered.

    character merge --persona remorseful --run artifacts/runs/remorseful_...
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from character import disk_space, layout, registry
from character.atomic import atomic_dir, atomic_write_json
from character.config import RunConfig
from character.config_layers import config_hash
from character.cost import CostTracker
from character.errors import ConfigError, TrainingAborted, UsageError, VerificationError
from character.manifest import MANIFEST, Manifest, read_manifest, write_manifest
from character.merging import (
    LoraAdapter,
    combined_adapter,
    load_adapter,
    merge_into_model,
    save_combined_adapter,
)
from character.models import resolve_model
from character.training import sanity

log = logging.getLogger(__name__)

PROVENANCE = "merge.json"


def _adapter_path(ref: str | Path, what: str) -> Path:
    path = Path(resolve_model(str(ref)))
    if not (path / "adapter_config.json").exists():
        raise UsageError(
            f"{what} adapter '{ref}' resolves to {path}, which is not a LoRA adapter directory "
            "(no adapter_config.json); pass the adapter/ folder the train stage wrote"
        )
    return path


def _check_base(adapter: LoraAdapter, base_path: str, what: str) -> None:
    """The DPO delta must go onto the model it was trained from; a different base ships a broken model."""
    recorded = adapter.base
    if not recorded:
        return
    try:
        recorded_path = resolve_model(recorded)
    except Exception:  # noqa: BLE001 - an unresolvable record (moved dir, uncached hub id) is only a warning
        recorded_path = recorded
    if Path(recorded_path).exists() and Path(recorded_path).resolve() != Path(base_path).resolve():
        raise ConfigError(
            f"the {what} adapter was trained on {recorded_path} but the merge base is {base_path}; "
            "pass --base with the model it was trained from (or models.student)"
        )
    if not Path(recorded_path).exists():
        log.warning(
            "%s adapter records base %r, which is not on disk; assuming %s", what, recorded, base_path
        )


def _verify_saved(
    out_dir: Path, base_path: str, adapters: list[tuple[LoraAdapter, float]], touched: list[str]
) -> float:
    """Largest |W_saved − (W_base + Σ wᵢΔWᵢ)| over every touched matrix, read back from disk."""
    import torch
    from safetensors import safe_open

    def index(folder: Path) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for f in sorted(folder.glob("*.safetensors")):
            with safe_open(str(f), framework="pt") as h:
                out.update({k: f for k in h.keys()})  # noqa: SIM118 - safe_open handles are not mappings
        return out

    base_idx, saved_idx = index(Path(base_path)), index(out_dir)
    worst, bound = 0.0, 0.0
    for module in touched:
        key = f"{module}.weight"
        if key not in base_idx or key not in saved_idx:
            raise VerificationError(
                f"merged model check: {key} missing from the base or the saved model files"
            )
        with safe_open(str(base_idx[key]), framework="pt") as h:
            base_w = h.get_tensor(key)
        with safe_open(str(saved_idx[key]), framework="pt") as h:
            saved = h.get_tensor(key)
        expected = base_w.double()
        for adapter, weight in adapters:
            if module in adapter.modules:
                expected += weight * adapter.delta(module)
        err = float((saved.double() - expected).abs().max())
        # Rounding the float64 sum to the saved dtype costs at most half an ulp of the largest value.
        ulp = torch.finfo(saved.dtype).eps * max(1.0, float(expected.abs().max()))
        worst, bound = max(worst, err), max(bound, ulp)
        if err > ulp:
            raise VerificationError(
                f"merged {key} differs from base + Σ w·ΔW by {err:.3g} (> {ulp:.3g}, one ulp of {saved.dtype})"
            )
    return worst


def merge_adapters(
    *,
    base: str,
    dpo: str | Path,
    sft: str | Path,
    dpo_weight: float,
    sft_weight: float,
    output: Path,
    adapter_output: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Merge and save; returns the provenance record (also written to `output/merge.json`)."""
    import torch
    from transformers import AutoModelForCausalLM

    from character.models import load_tokenizer

    base_path = resolve_model(base)
    dpo_adapter = load_adapter(_adapter_path(dpo, "DPO"))
    sft_adapter = load_adapter(_adapter_path(sft, "SFT"))
    _check_base(dpo_adapter, base_path, "DPO")
    pairs = [(dpo_adapter, dpo_weight), (sft_adapter, sft_weight)]

    model = AutoModelForCausalLM.from_pretrained(base_path, dtype="auto")
    torch.set_grad_enabled(True)
    touched = merge_into_model(model, pairs)
    tok = load_tokenizer(base)
    record: dict[str, Any] = {
        "method": "exact: W = W_base + sum(w_i * (alpha_i/r_i) * B_i @ A_i), float64 accumulation",
        "base": base,
        "base_path": base_path,
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "adapters": [
            {
                "role": role,
                "path": str(a.path),
                "sha256": a.sha256,
                "weight": w,
                "rank": max(f.a.shape[0] for f in a.modules.values()),
                "alpha": a.config.get("lora_alpha"),
                "modules": len(a.modules),
                "trained_on": a.base,
            }
            for role, (a, w) in zip(("dpo", "sft"), pairs, strict=True)
        ],
        "touched_matrices": len(touched),
    }
    with atomic_dir(Path(output)) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        record["max_abs_error"] = _verify_saved(tmp, base_path, pairs, sorted(touched))
        atomic_write_json(tmp / PROVENANCE, record)
    del model
    log.info(
        "merged model saved to %s (max |error| %.3g over %d matrices)",
        output,
        record["max_abs_error"],
        len(touched),
    )
    if adapter_output is not None:
        config, tensors = combined_adapter(pairs, base=base_path)
        with atomic_dir(Path(adapter_output)) as tmp:
            save_combined_adapter(tmp, config, tensors)
            atomic_write_json(tmp / PROVENANCE, record)
        record["combined_adapter"] = {"path": str(adapter_output), "rank": config["r"]}
        log.info("combined adapter (rank %d) saved to %s", config["r"], adapter_output)
    return record


def default_output(cfg: RunConfig) -> Path:
    """Where `character merge` puts a model made outside a run directory."""
    from character import paths

    # A directory production or history pins is never written over: the next free name@N instead.
    return registry.unpinned_path(
        paths.models_dir() / registry.checkpoint_name(cfg.persona, "merged", cfg.name_suffix or None)
    )


def register_merged(cfg: RunConfig, out: Path, record: dict[str, Any], *, run_dir: Path | None) -> str:
    name = registry.checkpoint_name(cfg.persona, "merged", cfg.name_suffix or None)
    stored = registry.register(
        registry.Checkpoint(
            name=name,
            path=str(Path(out).resolve()),
            persona=cfg.persona,
            stage="merged",
            base=record["base_path"],
            run=str(Path(run_dir).resolve()) if run_dir else None,
            kind="model",
            metrics={
                "dpo_weight": cfg.merge.dpo_weight,
                "sft_weight": cfg.merge.sft_weight,
                "max_abs_error": record["max_abs_error"],
            },
            verified=True,  # every touched matrix was read back and checked against the formula
        )
    )
    return stored.name  # name@2 when an earlier merge under this name is pinned


def run(
    cfg: RunConfig,
    run_dir: Path,
    *,
    progress: bool = True,
    tracker: CostTracker | None = None,
    dpo: str | Path | None = None,
    sft: str | Path | None = None,
    base: str | None = None,
    output: Path | None = None,
) -> Manifest:
    """Merge the run's adapters (or the given ones) into `merge/model`; register `{persona}[_{suffix}]_merged`.

    Under a multi-process launch only the main process merges and registers; the others wait for it.
    """
    del tracker
    from character.training import distributed

    return distributed.on_main(
        lambda: _merge(cfg, run_dir, progress=progress, dpo=dpo, sft=sft, base=base, output=output)
    )


def _merge(
    cfg: RunConfig,
    run_dir: Path,
    *,
    progress: bool,
    dpo: str | Path | None,
    sft: str | Path | None,
    base: str | None,
    output: Path | None,
) -> Manifest:
    run_dir = Path(run_dir)
    mdir = layout.stage_dir(run_dir, "merge")
    # Before anything of a finished merge is touched: a refusal leaves it as it was.
    disk_space.require_for_stage(cfg, Path(output).parent if output else run_dir, "merge", model=base)
    (mdir / MANIFEST).unlink(missing_ok=True)
    (mdir / sanity.SANITY_FILE).unlink(missing_ok=True)
    shutil.rmtree(mdir / "aborted", ignore_errors=True)
    manifest = Manifest(stage="merge", config_hash=config_hash(cfg), seed=cfg.seed)
    if sft is None:
        sft_manifest = read_manifest(run_dir / "sft")
        if sft_manifest is None or sft_manifest.status != "done":
            raise UsageError(
                f"the sft stage of {run_dir} has not finished (no sft/manifest.json): run `character train sft` "
                "first, or pass --sft with an adapter"
            )
    out = Path(output) if output else layout.merged_model(run_dir)
    registry.refuse_if_pinned(out, "the merge output")  # shipped weights are never written over
    adapter_out = mdir / "adapter" if cfg.merge.as_adapter else None
    record = merge_adapters(
        base=base or cfg.models.student,
        dpo=dpo or layout.dpo_adapter(run_dir),
        sft=sft or layout.sft_adapter(run_dir),
        dpo_weight=cfg.merge.dpo_weight,
        sft_weight=cfg.merge.sft_weight,
        output=out,
        adapter_output=adapter_out,
        progress=progress,
    )
    try:  # does the merged model still speak? failing -> merge/aborted/, nothing registered
        sanity.gate(out, base_ref=record["base_path"], cfg=cfg, stage_dir=mdir, what="the merged model")
    except TrainingAborted:
        if adapter_out is not None:
            shutil.rmtree(adapter_out, ignore_errors=True)  # the same model as an adapter
        raise
    name = register_merged(cfg, out, record, run_dir=run_dir)
    manifest.counts["touched_matrices"] = record["touched_matrices"]
    manifest.metrics["max_abs_error"] = record["max_abs_error"]
    manifest.outputs["model"] = str(out)
    if adapter_out is not None:
        manifest.outputs["adapter"] = str(adapter_out)
    manifest.extra.update({**record, "checkpoint_name": name})
    write_manifest(mdir, manifest.finish())
    return manifest
