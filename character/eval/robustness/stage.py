"""The eval stage's robustness step: the final model and the DPO-only model of a run, side by side.

Every pipeline run has both checkpoints (`dpo/merged` and `merge/model`), so every run shows what
introspection added under attack (the paper's ablation, for free). Writes `eval/robustness.json` and
`eval/robustness_replies.jsonl` (every reply; a rerun of the stage resumes from it) and returns the
headline figures for the stage manifest.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from character import layout
from character.atomic import atomic_write_json
from character.config import RunConfig
from character.constitutions import Constitution
from character.cost import CostTracker
from character.eval.robustness.suite import evaluate
from character.eval.target import Target, resolve_target
from character.models import is_complete

log = logging.getLogger(__name__)

FILE = "robustness.json"
REPLIES = "robustness_replies.jsonl"


def run_checkpoints(run_dir: Path, final: Target, final_kind: str, *, dpo_only: bool) -> dict[str, Target]:
    """{"full": the final model} plus {"dpo_only": dpo/merged} when it exists and differs from the final."""
    out = {"full": final}
    dpo = layout.dpo_merged(run_dir)
    if dpo_only and final_kind != "dpo/merged" and is_complete(dpo):
        out = {"dpo_only": resolve_target(str(dpo)), "full": final}
    return out


def robustness_for_run(
    cfg: RunConfig,
    run_dir: Path,
    c: Constitution,
    final: Target,
    final_kind: str,
    *,
    progress: bool = True,
    tracker: CostTracker | None = None,
) -> dict[str, Any]:
    """Run the evaluation for a run's checkpoints; returns manifest metrics (flat numbers)."""
    out_dir = layout.stage_dir(run_dir, "eval")
    tested = run_checkpoints(run_dir, final, final_kind, dpo_only=cfg.robustness.dpo_only)
    doc = evaluate(cfg, c, tested, replies_path=out_dir / REPLIES, progress=progress, tracker=tracker)
    doc["final_kind"] = final_kind
    atomic_write_json(out_dir / FILE, doc)
    return headline(doc)


def headline(doc: dict[str, Any]) -> dict[str, float]:
    """Flat figures per checkpoint: default and mean-attack F1, prefill F1, last drift turn's share."""
    out: dict[str, float] = {}
    for key, res in doc.get("results", {}).items():
        suf = res.get("suffixes", {})
        pairs = {
            "default_f1": suf.get("default", {}).get("macro_f1"),
            "suffix_f1": suf.get("mean", {}).get("macro_f1"),
            "prefill_f1": (res.get("prefill") or {}).get("macro_f1"),
        }
        drift = res.get("drift") or {}
        if drift:
            last = max(drift, key=lambda k: int(k.split("_")[1]))
            pairs[f"drift_share_{last}"] = drift[last].get("persona_share")
        coh = res.get("coherence") or {}
        pairs["coherence_win_rate"] = coh.get("win_rate")
        out.update({f"robustness_{key}_{k}": v for k, v in pairs.items() if isinstance(v, int | float)})
    return out
