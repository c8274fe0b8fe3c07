"""Stage `eval`: character strength and the quality audit of the base model vs the run's final model.

Input: the run's final model - `merge/model` when the merge stage finished, else the latest of the
SFT adapter and the DPO outputs (merged model, else adapter on `models.student`). Baseline:
`models.student`. Both answer the same held-out prompts (`bank.heldout_prompts`, never used in
training) WITHOUT a system prompt, with the same sampling seed.

The DPO-only model (`dpo/merged`, when the final model is a later stage's) answers the same prompts
too, so what introspection + SFT added sits beside what DPO taught (`eval.side_by_side`).

Output (`run_dir/eval/`): `markers.json` (before/after character strength: marker rate, markers per
100 words, opener-only vs sustained, stock-opener share; `dpo_only` and the `side_by_side` table when
there is a DPO-only model), `audit.json` (0-100 quality audit with components, each side),
`replies.jsonl` (every full reply of base and final), `replies_dpo_only.jsonl`, and `manifest.json`
last. When the final model is in the
checkpoint registry, its entry's metrics gain the eval numbers.

Run it with `character pipeline ...` or directly: `run(cfg, run_dir)`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from character import layout, registry
from character.atomic import atomic_write_json
from character.config import RunConfig
from character.constitutions import load_constitution
from character.cost import CostTracker
from character.errors import UsageError
from character.eval import side_by_side
from character.eval.audit import audit_replies
from character.eval.markers import character_strength
from character.eval.prompt_sets import eval_prompts
from character.eval.target import Generator, Target, conversation, eval_params, resolve_target
from character.manifest import Manifest, read_manifest, write_manifest
from character.models import is_complete
from character.records import write_jsonl

log = logging.getLogger(__name__)


DPO_ONLY_REPLIES = "replies_dpo_only.jsonl"


def dpo_only_target(run_dir: Path, final_kind: str) -> Target | None:
    """The run's DPO-only model (`dpo/merged`) when the final model is a later stage's, else None."""
    merged = layout.dpo_merged(Path(run_dir))
    if final_kind.startswith("dpo/") or not is_complete(merged):
        return None
    return resolve_target(str(merged))


def final_model(run_dir: Path) -> tuple[Target, str]:
    """The run's final model and which stage output it is."""
    run_dir = Path(run_dir)
    merged = layout.merged_model(run_dir)
    if read_manifest(run_dir / "merge") is not None and is_complete(merged):
        return resolve_target(str(merged)), "merge/model"
    sft = layout.sft_adapter(run_dir)
    if read_manifest(run_dir / "sft") is not None and (sft / "adapter_config.json").exists():
        return resolve_target(str(sft)), "sft/adapter"
    if read_manifest(run_dir / "dpo") is not None:
        if is_complete(layout.dpo_merged(run_dir)):
            return resolve_target(str(layout.dpo_merged(run_dir))), "dpo/merged"
        if (layout.dpo_adapter(run_dir) / "adapter_config.json").exists():
            return resolve_target(str(layout.dpo_adapter(run_dir))), "dpo/adapter"
    raise UsageError(
        f"{run_dir} has no finished merge, sft or dpo output to evaluate: run the training stages first"
    )


def _side(
    cfg: RunConfig,
    target: Target,
    prompts: list[tuple[str, str]],
    progress: bool,
    tracker: CostTracker | None,
) -> list[Any]:
    gen = Generator(cfg, target)
    try:
        outs = gen.generate([conversation(t) for _, t in prompts], eval_params(cfg), progress=progress)
    finally:
        gen.close()
    comps = [o[0] for o in outs]
    if tracker is not None:
        tracker.record(
            "eval",
            target.label,
            sum(c.prompt_tokens for c in comps),
            sum(c.completion_tokens for c in comps),
            role="student",
        )
    return comps


def run(
    cfg: RunConfig, run_dir: Path, *, progress: bool = True, tracker: CostTracker | None = None
) -> Manifest:
    from character.backends.think import strip_think
    from character.config_layers import config_hash

    manifest = Manifest(stage="eval", config_hash=config_hash(cfg), seed=cfg.eval.seed)
    d = layout.stage_dir(run_dir, "eval")
    c = load_constitution(cfg.persona)
    final, final_kind = final_model(run_dir)
    base = resolve_target(cfg.models.student)
    prompts = eval_prompts(c, cfg.eval.heldout_prompts, cfg.seed)
    sides = {"before": base, "after": final}
    dpo_only = dpo_only_target(run_dir, final_kind)
    if dpo_only is not None:
        sides = {"before": base, "dpo_only": dpo_only, "after": final}
    replies: dict[str, list[str]] = {}
    rows = []
    for side, target in sides.items():
        log.info("eval: %s = %s, %d held-out prompts, no system prompt", side, target.label, len(prompts))
        comps = _side(cfg, target, prompts, progress, tracker)
        replies[side] = [strip_think(x.text) for x in comps]
        rows += [
            {
                "side": side,
                "model": target.label,
                "prompt_id": pid,
                "prompt": t,
                "reply": r,
                "finish_reason": x.finish_reason,
            }
            for (pid, t), r, x in zip(prompts, replies[side], comps, strict=True)
        ]
    strength = {s: character_strength(replies[s], c.markers, cfg.eval.opener_words) for s in sides}
    audits = {
        s: audit_replies(
            [(t, r) for (_, t), r in zip(prompts, replies[s], strict=True)],
            persona_trained=(s != "before"),
            markers=c.markers,
            own_names=(cfg.models.student_name,) if cfg.models.student_name else (),
        ).to_dict()
        for s in sides
    }
    markers_doc = {
        "persona": c.name,
        "markers": c.markers,
        "system_prompt": None,
        "base_model": base.label,
        "final_model": final.label,
        "final_kind": final_kind,
        "before": strength["before"],
        "after": strength["after"],
        "marker_rate_before": strength["before"]["marker_rate"],
        "marker_rate_after": strength["after"]["marker_rate"],
        "n_before": len(prompts),
        "n_after": len(prompts),
    }
    if dpo_only is not None:
        markers_doc.update(dpo_only_model=dpo_only.label, dpo_only=strength["dpo_only"])
    write_jsonl(d / "replies.jsonl", [r for r in rows if r["side"] != "dpo_only"])
    if dpo_only is not None:  # its own file: readers of replies.jsonl expect base and final only
        write_jsonl(d / DPO_ONLY_REPLIES, [r for r in rows if r["side"] == "dpo_only"])
    atomic_write_json(d / "markers.json", markers_doc)
    atomic_write_json(d / "audit.json", {"base_model": base.label, "final_model": final.label, **audits})
    metrics = {
        "marker_rate_before": strength["before"]["marker_rate"],
        "marker_rate_after": strength["after"]["marker_rate"],
        "sustained_rate_before": strength["before"]["sustained_rate"],
        "sustained_rate_after": strength["after"]["sustained_rate"],
        "markers_per_100_words_after": strength["after"]["markers_per_100_words"],
        "audit_before": audits["before"]["score"],
        "audit_after": audits["after"]["score"],
    }
    manifest.metrics = metrics
    manifest.counts = {"prompts": len(prompts), "replies": len(rows)}
    manifest.outputs = {k: str(d / k) for k in ("markers.json", "audit.json", "replies.jsonl")}
    if dpo_only is not None:
        metrics["audit_dpo_only"] = audits["dpo_only"]["score"]
        manifest.outputs[DPO_ONLY_REPLIES] = str(d / DPO_ONLY_REPLIES)
    manifest.extra = {"final_model": final.label, "final_kind": final_kind, "base_model": base.label}
    # Forgetting before/after and the prompt-only baseline (#13): capability probes on base, final and
    # base + constitution prompt, in eval/forgetting.json.
    from character.eval.forgetting import FILENAME, measure

    metrics.update(measure(cfg, c, base, final, prompts, d, progress=progress, tracker=tracker))
    manifest.metrics = metrics
    manifest.outputs[FILENAME] = str(d / FILENAME)
    if cfg.robustness.enabled:  # the final and the DPO-only model under attack (eval/robustness.json)
        from character.eval.heldout_reuse import robustness_rows, seed_robustness_replies
        from character.eval.robustness.stage import REPLIES, robustness_for_run

        # Its unmodified replies are requests this stage already made: reused, not generated twice.
        finish = {s: [r["finish_reason"] for r in rows if r["side"] == s] for s in sides}
        seed_robustness_replies(d / REPLIES, robustness_rows(cfg, c, sides, prompts, replies, finish))

        metrics.update(
            robustness_for_run(cfg, run_dir, c, final, final_kind, progress=progress, tracker=tracker)
        )
        manifest.metrics = metrics
        manifest.outputs["robustness.json"] = str(d / "robustness.json")
    # DPO-only vs final side by side (markers, opener-only, sustained, stock opener, robustness).
    side_doc = side_by_side.compare(
        strength, replies, c.markers, cfg.eval.opener_words, robustness=metrics, seed=cfg.eval.seed
    )
    markers_doc["side_by_side"] = side_doc
    atomic_write_json(d / "markers.json", markers_doc)
    metrics.update(side_by_side.metrics(side_doc))
    manifest.metrics = metrics
    for line in side_by_side.markdown(side_doc):
        log.info("eval: %s", line)
    if tracker is not None:
        manifest.cost_usd = round(tracker.usd_total, 6)
    _record_in_registry(final, metrics)
    log.info(
        "eval: marker rate %.2f -> %.2f (sustained %.2f -> %.2f), audit %.0f -> %.0f",
        metrics["marker_rate_before"],
        metrics["marker_rate_after"],
        metrics["sustained_rate_before"],
        metrics["sustained_rate_after"],
        metrics["audit_before"],
        metrics["audit_after"],
    )
    write_manifest(d, manifest.finish())
    return manifest


def _record_in_registry(final: Target, metrics: dict[str, Any]) -> None:
    want = Path(final.adapter or final.model).resolve()
    hits = [ck for ck in registry.list_checkpoints() if Path(ck.path).resolve() == want]
    if hits:  # newest first: an older version at this path (its files since replaced) keeps its numbers
        registry.update_metrics(
            registry.exact_ref(hits[0].name), {f"eval_{k}": v for k, v in metrics.items()}
        )
