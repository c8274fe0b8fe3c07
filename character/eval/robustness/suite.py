"""The robustness evaluation end to end: generate, train the classifier, score, judge coherence.

In: the config (`cfg.robustness`, sampling from `cfg.eval`), the constitution, the checkpoints under
test (label -> Target, e.g. {"dpo_only": ..., "full": ...}) and the base model. Out: one document
(`robustness.json`) with, per checkpoint under test:
  - `suffixes`: macro-F1, accuracy and persona share per variant (`default` = unmodified prompt,
    then each "stop role-playing" suffix), 95 % bootstrap intervals, and `mean` over the attacks;
  - `prefill`: the prefill attack (turn 1 by the base model, turn 2 by the checkpoint);
  - `drift`: persona share and F1 at the configured assistant turns of a neutral conversation;
  - `markers`: the marker rate per variant (a classifier-free second opinion);
  - `coherence`: judged against the prompted base model, both orders, consistent verdicts only.
A classifier that can tell the checkpoint from the base model on unmodified prompts but is fooled by
a suffix shows the persona dropping; a checkpoint the classifier cannot tell from the base even on
unmodified prompts has no persona to defend (its `default` F1 sits near chance). Distinguishable is
not the same as good: a collapsed model is distinguishable too, which is why the coherence judge and
the quality audit sit beside these numbers.

Run it with `character eval robustness` or from the eval stage (`stage.robustness_for_run`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from character.config import RunConfig
from character.constitutions import Constitution
from character.cost import CostTracker
from character.errors import ConfigError
from character.eval.prompt_sets import eval_prompts
from character.eval.robustness.classifier import (
    BASE_LABEL,
    Row,
    make_classifier,
    split_prompts,
    training_rows,
)
from character.eval.robustness.coherence import coherence
from character.eval.robustness.plan import Plan
from character.eval.robustness.replies import Replies, Source, settings_fingerprint
from character.eval.robustness.suffixes import DEFAULT_ID, variants
from character.eval.target import (
    Target,
    eval_params,
    resolve_target,
    same_checkpoint,
)
from character.prompts.system import teacher_system

log = logging.getLogger(__name__)


def evaluate(
    cfg: RunConfig,
    c: Constitution,
    tested: dict[str, Target],
    *,
    base: Target | None = None,
    prompts_file: Path | None = None,
    replies_path: Path | None = None,
    progress: bool = True,
    tracker: CostTracker | None = None,
) -> dict[str, Any]:
    r = cfg.robustness
    t0 = time.monotonic()
    base = base or resolve_target(cfg.models.student)
    vs = variants(r.suffix_count, r.suffixes)
    n_eval = max(r.prompts, r.prefill_prompts, r.drift_conversations, r.coherence_pairs)
    pool = eval_prompts(c, r.classifier_prompts + n_eval, cfg.seed, prompts_file)
    cls_prompts, eval_ps = split_prompts(pool, r.classifier_prompts, cfg.seed)
    clf = make_classifier(cfg)
    clf.check()  # a missing encoder fails now, not after the generation
    sources = _sources(c, tested, base, r.contrast)
    warnings = _warnings(tested, base)
    params = eval_params(cfg, max_new_tokens=r.max_new_tokens)
    settings = settings_fingerprint(params, {"followup": r.followup, "persona": c.name})
    replies = Replies(cfg, params, settings, path=replies_path, tracker=tracker, progress=progress)
    plan = Plan(r, vs, cls_prompts, eval_ps)

    base_src = sources[0]
    for src in sources:
        try:
            plan.generate(replies, src, base_src, prompted_system=teacher_system(c, cfg.models.student_name))
        finally:
            src.close()
    tested_srcs = [s for s in sources if s.tested]
    judged = coherence(cfg, c, replies, tested_srcs, base_src, plan.coherence_prompts, progress)

    # The classifier: unmodified replies to the classifier prompts; scored replies never train it.
    train_all = [
        Row(replies.get(s, "single", DEFAULT_ID, pid), s.label, pid, s.key)
        for s in sources
        for pid, _ in cls_prompts
    ]
    scored = plan.scored_texts(replies, sources)
    rows, dropped = training_rows(train_all, scored)
    t_fit = time.monotonic()
    clf.fit(rows)
    fit_seconds = round(time.monotonic() - t_fit, 2)
    unique = sorted(set(scored))
    pred = dict(zip(unique, clf.predict(unique), strict=True))

    negatives = [s for s in sources if not s.tested]
    results = {
        s.key: plan.score(replies, pred, s, negatives, c, r.bootstrap, cfg.seed)
        | {"coherence": judged.get(s.key)}
        for s in tested_srcs
    }
    doc = {
        "persona": c.name,
        "base_model": base.label,
        "checkpoints": {s.key: s.target.label for s in tested_srcs},
        "contrast": {s.key: s.target.label for s in sources if not s.tested and s is not base_src},
        "classifier": {
            "kind": clf.kind,
            "labels": clf.labels,
            "train_rows": clf.train_counts,
            "dropped_as_scored": dropped,
            "fit_seconds": fit_seconds,
            "train_prompts": len(cls_prompts),
            "scored_prompts": len(eval_ps),
            "train_prompt_ids": [pid for pid, _ in cls_prompts],
            "scored_prompt_ids": [pid for pid, _ in eval_ps],
            "heldout": "trained on replies to the classifier prompts only; scored on replies to the other prompts",
        },
        "variants": [{"id": v.id, "suffix": v.suffix} for v in vs],
        "followup": r.followup,
        "drift_turns": r.drift_turns,
        "bootstrap": r.bootstrap,
        "results": results,
        "warnings": warnings,
        "replies_generated": replies.generated,
        "seconds": round(time.monotonic() - t0, 1),
    }
    for key, res in results.items():
        log.info("robustness: %s %s", key, one_line(res))
    return doc


def one_line(res: dict[str, Any]) -> str:
    """`default F1 0.91, suffix mean 0.80, prefill 0.75, drift share t1 0.9 -> t5 0.6`."""
    parts = []
    suf = res.get("suffixes", {})
    if DEFAULT_ID in suf:
        parts.append(f"default F1 {suf[DEFAULT_ID]['macro_f1']}")
    if "mean" in suf:
        parts.append(f"suffix mean F1 {suf['mean']['macro_f1']}")
    if res.get("prefill"):
        parts.append(f"prefill F1 {res['prefill']['macro_f1']}")
    dr = res.get("drift") or {}
    if dr:
        shares = [f"{k.replace('turn_', 't')} {v['persona_share']}" for k, v in dr.items()]
        parts.append("drift persona share " + ", ".join(shares))
    return "; ".join(parts)


def _sources(c: Constitution, tested: dict[str, Target], base: Target, contrast: list[str]) -> list[Source]:
    if not tested:
        raise ConfigError(
            "robustness: no checkpoint to evaluate: pass --checkpoint (a path or registry name)"
        )
    out = [Source("base", BASE_LABEL, base)]
    for i, ref in enumerate(contrast, 1):
        t = resolve_target(ref)
        label = t.persona or Path(ref).name
        if label in (c.name, BASE_LABEL) or any(s.label == label for s in out):
            raise ConfigError(
                f"robustness.contrast entry '{ref}' would be class '{label}', which is taken: contrast models "
                f"need a persona other than '{c.name}' (registry entries carry theirs)"
            )
        out.append(Source(f"contrast{i}", label, t))
    out += [Source(key, c.name, t, tested=True) for key, t in tested.items()]
    return out


def _warnings(tested: dict[str, Target], base: Target) -> list[str]:
    out = []
    for key, t in tested.items():
        why = same_checkpoint(t, base)
        if why:
            out.append(
                f"{key} is the base model ({why}): the classifier cannot separate them; expect chance F1"
            )
            log.warning("robustness: %s", out[-1])
    return out
