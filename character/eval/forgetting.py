"""Forgetting before/after, for every run: capability probes on three models, and the prompt-only baseline.

The eval stage calls `measure()` once. Three models answer the same capability probes (greedy,
`probes.probe_params`; `eval.probe_items` of them, drawn evenly across kinds - presets size it):

- `before`: the base model (`models.student`), no system prompt;
- `after`: the run's final model, no system prompt;
- `prompt_only`: the base model with the constitution as its system prompt - the cheap alternative to
  training (seed report 001: a richer prompt beat every fine-tune, 0.765 vs 0.252).

The prompt-only model also answers the stage's held-out prompts, so its character strength sits beside
the trained model's (`eval.prompt_only_baseline = false` leaves it out: two models, no prompt-only
keys). `after` vs `before` (and `prompt_only` vs `before`) are paired comparisons with a
95 % interval (`capability.paired_difference`); at smoke sizes the verdict is honestly "insufficient
evidence".

Writes `eval/forgetting.json` (per-side accuracy by kind, every probe reply, the paired statistics,
the prompt-only strength and replies) and returns flat metrics for the stage's manifest. The run
report reads the file through `report_row`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from character.atomic import atomic_write_json
from character.constitutions import Constitution
from character.cost import CostTracker
from character.eval.capability import describe, item_verdicts, paired_difference
from character.eval.markers import character_strength
from character.eval.probes import load_probes, probe_params, score_probes, select_probes
from character.eval.target import Generator, Target, conversation, eval_params
from character.prompts.system import teacher_system

log = logging.getLogger(__name__)

FILENAME = "forgetting.json"


def _replies(
    gen: Generator, convs: list[Any], params: Any, progress: bool, tracker: CostTracker | None
) -> list[str]:
    from character.backends.think import strip_think

    comps = [o[0] for o in gen.generate(convs, params, progress=progress)]
    if tracker is not None:
        tracker.record(
            "eval",
            gen.target.label,
            sum(c.prompt_tokens for c in comps),
            sum(c.completion_tokens for c in comps),
        )
    return [strip_think(c.text) for c in comps]


def measure(
    cfg: Any,
    c: Constitution,
    base: Target,
    final: Target,
    prompts: list[tuple[str, str]],
    out_dir: Path,
    *,
    progress: bool = True,
    tracker: CostTracker | None = None,
) -> dict[str, Any]:
    """Run the probes and the prompt-only baseline, write `out_dir/forgetting.json`, return metrics."""
    e = cfg.eval
    probes = select_probes(load_probes(), e.probe_items, cfg.seed)
    system = teacher_system(c, cfg.models.student_name)
    pparams = probe_params(cfg)
    log.info("eval: %d capability probes (greedy) on base, prompt-only base and final model", len(probes))
    gen = Generator(cfg, base)
    try:
        before = _replies(gen, [conversation(p.prompt) for p in probes], pparams, progress, tracker)
        if e.prompt_only_baseline:
            prompted = _replies(
                gen, [conversation(p.prompt, system) for p in probes], pparams, progress, tracker
            )
            prompted_held = _replies(
                gen, [conversation(t, system) for _, t in prompts], eval_params(cfg), progress, tracker
            )
    finally:
        gen.close()
    gen = Generator(cfg, final)
    try:
        after = _replies(gen, [conversation(p.prompt) for p in probes], pparams, progress, tracker)
    finally:
        gen.close()
    sides = {"before": score_probes(probes, before), "after": score_probes(probes, after)}
    if e.prompt_only_baseline:
        sides["prompt_only"] = score_probes(probes, prompted)

    def paired(a: str, b: str) -> dict[str, Any]:
        return paired_difference(
            item_verdicts(sides[a]),
            item_verdicts(sides[b]),
            min_items=e.min_probe_items,
            bootstrap=e.probe_bootstrap,
            seed=e.seed,
        )

    cap = paired("before", "after")
    doc: dict[str, Any] = {
        "probe_items": len(probes),
        "models": {"before": base.label, "after": final.label},
        "capability": cap,
        "probes": sides,
    }
    metrics: dict[str, Any] = {
        "probe_items": len(probes),
        "probe_accuracy_before": cap["baseline_accuracy"],
        "probe_accuracy_after": cap["candidate_accuracy"],
        "probe_difference": cap["difference"],
        "probe_difference_ci_low": cap["ci_low"],
        "probe_difference_ci_high": cap["ci_high"],
        "probe_verdict": cap["verdict"],
    }
    log.info("eval: trained vs base - %s", describe(cap))
    if e.prompt_only_baseline:
        cap_prompt = paired("before", "prompt_only")
        strength = character_strength(prompted_held, c.markers, e.opener_words)
        doc["models"]["prompt_only"] = base.label
        doc.update(
            prompt_only_system=system,
            capability_prompt_only=cap_prompt,
            prompt_only_strength=strength,
            prompt_only_replies=[
                {"prompt_id": pid, "prompt": t, "reply": r}
                for (pid, t), r in zip(prompts, prompted_held, strict=True)
            ],
        )
        metrics.update(
            probe_accuracy_prompt_only=cap_prompt["candidate_accuracy"],
            marker_rate_prompt_only=strength["marker_rate"],
            sustained_rate_prompt_only=strength["sustained_rate"],
        )
        log.info("eval: prompt-only vs base - %s", describe(cap_prompt))
    else:
        log.info("eval: no prompt-only baseline (eval.prompt_only_baseline = false)")
    atomic_write_json(Path(out_dir) / FILENAME, doc)
    return metrics


def report_row(label: str, stage_dir: Path) -> str | None:
    """One markdown row (probe accuracy before / prompt-only / after, the verdict) for the run report."""
    import json

    p = Path(stage_dir) / FILENAME
    if not p.exists():
        return None
    try:
        doc = json.loads(p.read_text())
        cap, po = doc["capability"], doc.get("capability_prompt_only")
        ci = f"[{cap['ci_low']:+.3f}, {cap['ci_high']:+.3f}]" if cap.get("ci_low") is not None else "-"
        # Without the baseline (eval.prompt_only_baseline = false) its cells say it was not measured.
        po_acc = f"{po['candidate_accuracy']:.3f}" if po else "not run"
        po_markers = f"{doc['prompt_only_strength']['marker_rate']:.3f}" if po else "not run"
        return (
            f"| {label} | {cap['baseline_accuracy']:.3f} | {po_acc} "
            f"| {cap['candidate_accuracy']:.3f} | {cap['difference']:+.3f} {ci} | {cap['verdict']} (n={cap['n']}) "
            f"| {po_markers} |"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None  # an unreadable file leaves the row out; the stage's manifest still has the numbers


REPORT_HEADER = [
    "## Forgetting (capability probes, greedy) and the prompt-only baseline",
    "",
    "| run | probes before | prompt-only | after | after - before (95 % CI) | verdict | prompt-only marker rate |",
    "|---|---|---|---|---|---|---|",
]
