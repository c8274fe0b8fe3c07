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
from character.eval.judge import constitution_criteria, judge_pairs, judge_stats
from character.eval.markers import character_strength
from character.eval.prompt_sets import eval_prompts
from character.eval.robustness import drift, prefill
from character.eval.robustness.classifier import (
    BASE_LABEL,
    Row,
    make_classifier,
    split_prompts,
    training_rows,
)
from character.eval.robustness.replies import Item, Replies, Source, settings_fingerprint
from character.eval.robustness.scoring import ScoredSet, score_sets
from character.eval.robustness.suffixes import DEFAULT_ID, Variant, variants
from character.eval.target import (
    Generator,
    Target,
    conversation,
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
    plan = _Plan(r, vs, cls_prompts, eval_ps)

    base_src = sources[0]
    for src in sources:
        try:
            plan.generate(replies, src, base_src, prompted_system=teacher_system(c, cfg.models.student_name))
        finally:
            src.close()
    tested_srcs = [s for s in sources if s.tested]
    coherence = _coherence(cfg, c, replies, tested_srcs, base_src, plan.coherence_prompts, progress)

    # The classifier: unmodified replies to the classifier prompts; scored replies never train it.
    train_all = [
        Row(replies.get(s, "single", DEFAULT_ID, pid), s.label, pid, s.key)
        for s in sources
        for pid, _ in cls_prompts
    ]
    scored = plan.scored_texts(replies, sources)
    rows, dropped = training_rows(train_all, scored)
    clf.fit(rows)
    unique = sorted(set(scored))
    pred = dict(zip(unique, clf.predict(unique), strict=True))

    negatives = [s for s in sources if not s.tested]
    results = {
        s.key: plan.score(replies, pred, s, negatives, c, r.bootstrap, cfg.seed)
        | {"coherence": coherence.get(s.key)}
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


class _Plan:
    """Which replies each source writes, and how they become test sets."""

    def __init__(
        self, r: Any, vs: list[Variant], cls_prompts: list[tuple[str, str]], eval_ps: list[tuple[str, str]]
    ):
        self.r, self.vs = r, vs
        self.cls_prompts = cls_prompts
        self.eval_ps = eval_ps
        self.scored_ps = eval_ps[: r.prompts]
        self.prefill_ps = eval_ps[: r.prefill_prompts]
        self.drift_ps = eval_ps[: r.drift_conversations]
        self.coherence_prompts = eval_ps[: r.coherence_pairs]
        self.last_turn = max(r.drift_turns) if r.drift_conversations else 1
        # Every prompt whose unmodified reply some part of the evaluation reads.
        self.default_ps = eval_ps[
            : max(r.prompts, r.prefill_prompts, r.drift_conversations, r.coherence_pairs)
        ]

    def generate(self, replies: Replies, src: Source, base_src: Source, *, prompted_system: str) -> None:
        single = [
            Item("single", DEFAULT_ID, pid, 1, conversation(t))
            for pid, t in self.cls_prompts + self.default_ps
        ]
        single += [
            Item("single", v.id, pid, 1, conversation(v.apply(t)))
            for v in self.vs
            if v.id != DEFAULT_ID
            for pid, t in self.scored_ps
        ]
        replies.fill(src, single, "unmodified and suffix-attacked")
        if src is base_src and self.coherence_prompts:
            replies.fill(
                src,
                [
                    Item("prompted", DEFAULT_ID, pid, 1, conversation(t, prompted_system))
                    for pid, t in self.coherence_prompts
                ],
                "persona-prompted",
            )
        if self.prefill_ps:
            items = [
                Item(
                    "prefill",
                    DEFAULT_ID,
                    pid,
                    2,
                    prefill.turn2_conversation(
                        t, replies.get(base_src, "single", DEFAULT_ID, pid), self.r.followup
                    ),
                )
                for pid, t in self.prefill_ps
            ]
            replies.fill(src, items, "prefill-attack")
        for turn in range(2, self.last_turn + 1):
            items = [
                Item(
                    "drift",
                    DEFAULT_ID,
                    pid,
                    turn,
                    drift.conversation(t, self.drift_history(replies, src, pid, turn)),
                )
                for pid, t in self.drift_ps
            ]
            replies.fill(src, items, f"drift turn-{turn}")

    def drift_history(self, replies: Replies, src: Source, pid: str, turn: int) -> list[str]:
        """The source's own replies before assistant turn `turn`."""
        first = replies.get(src, "single", DEFAULT_ID, pid)
        return [first] + [replies.get(src, "drift", DEFAULT_ID, pid, t) for t in range(2, turn)]

    def drift_reply(self, replies: Replies, src: Source, pid: str, turn: int) -> str:
        if turn == 1:
            return replies.get(src, "single", DEFAULT_ID, pid)
        return replies.get(src, "drift", DEFAULT_ID, pid, turn)

    def scored_texts(self, replies: Replies, sources: list[Source]) -> list[str]:
        out = []
        for s in sources:
            out += [replies.get(s, "single", v.id, pid) for v in self.vs for pid, _ in self.scored_ps]
            out += [replies.get(s, "prefill", DEFAULT_ID, pid, 2) for pid, _ in self.prefill_ps]
            out += [
                self.drift_reply(replies, s, pid, t) for t in self.r.drift_turns for pid, _ in self.drift_ps
            ]
        return out

    def score(
        self,
        replies: Replies,
        pred: dict[str, str],
        src: Source,
        negatives: list[Source],
        c: Constitution,
        bootstrap: int,
        seed: int,
    ) -> dict[str, Any]:
        group = {pid: i for i, (pid, _) in enumerate(self.eval_ps)}
        everyone = [src, *negatives]

        def test_set(ps: list[tuple[str, str]], text_of: Any) -> ScoredSet:
            ts = ScoredSet()
            for s in everyone:
                for pid, _ in ps:
                    ts.add(s.label, pred[text_of(s, pid)], group[pid])
            return ts

        suffix_sets = {
            v.id: test_set(self.scored_ps, lambda s, pid, v=v: replies.get(s, "single", v.id, pid))
            for v in self.vs
        }
        attacks = [v.id for v in self.vs if v.id != DEFAULT_ID]
        out: dict[str, Any] = {
            "suffixes": score_sets(
                suffix_sets, positive=src.label, bootstrap=bootstrap, seed=seed, mean_over=attacks
            )
        }
        if self.prefill_ps:
            ps = test_set(self.prefill_ps, lambda s, pid: replies.get(s, "prefill", DEFAULT_ID, pid, 2))
            out["prefill"] = score_sets({"prefill": ps}, positive=src.label, bootstrap=bootstrap, seed=seed)[
                "prefill"
            ]
        if self.drift_ps:
            turn_sets = {
                f"turn_{t}": test_set(self.drift_ps, lambda s, pid, t=t: self.drift_reply(replies, s, pid, t))
                for t in self.r.drift_turns
            }
            out["drift"] = score_sets(turn_sets, positive=src.label, bootstrap=bootstrap, seed=seed)
        out["markers"] = {
            who: {
                v.id: character_strength(
                    [replies.get(s, "single", v.id, pid) for pid, _ in self.scored_ps], c.markers
                )["marker_rate"]
                for v in self.vs
            }
            for who, s in (("tested", src), ("base", negatives[0]))
        }
        return out


def _coherence(
    cfg: RunConfig,
    c: Constitution,
    replies: Replies,
    tested: list[Source],
    base_src: Source,
    prompts: list[tuple[str, str]],
    progress: bool,
) -> dict[str, dict[str, Any]]:
    """Each tested model vs the persona-prompted base model, judged in both orders (paper 2.4)."""
    if not prompts:
        return {}
    e = cfg.eval
    judge = Generator(cfg, resolve_target(cfg.models.judge))
    out = {}
    try:
        for s in tested:
            items = [
                (
                    t,
                    replies.get(s, "single", DEFAULT_ID, pid),
                    replies.get(base_src, "prompted", DEFAULT_ID, pid),
                )
                for pid, t in prompts
            ]
            js = judge_pairs(
                judge,
                constitution_criteria(c),
                items,
                max_new_tokens=e.judge_max_new_tokens,
                temperature=e.judge_temperature,
                seed=e.seed,
                progress=progress,
            )
            out[s.key] = coherence_summary(js, bootstrap=cfg.robustness.bootstrap, seed=cfg.seed)
            out[s.key]["judge"] = judge.target.label
    finally:
        judge.close()
    return out


def coherence_summary(js: list[Any], *, bootstrap: int, seed: int) -> dict[str, Any]:
    """Wins, losses, inconsistent and unparsed pairs; the win rate over consistent verdicts only."""
    import numpy as np

    wins = [j.consistent is True and j.outcome == 1.0 for j in js]
    losses = [j.consistent is True and j.outcome == 0.0 for j in js]
    decided = [w or lo for w, lo in zip(wins, losses, strict=True)]
    n_dec = sum(decided)
    out: dict[str, Any] = {
        "opponent": "base model with the persona system prompt",
        "pairs": len(js),
        "wins": sum(wins),
        "losses": sum(losses),
        "inconsistent": sum(j.consistent is False for j in js),
        "unparsed": sum(j.consistent is None for j in js),
        "win_rate": round(sum(wins) / n_dec, 4) if n_dec else None,
        **{k: v for k, v in judge_stats(js).items() if k in ("inconsistency_rate", "unparsed_rate")},
    }
    if n_dec and bootstrap:
        w = np.array([1.0 if x else 0.0 for x, d in zip(wins, decided, strict=True) if d])
        draws = np.random.default_rng(seed).integers(0, len(w), size=(bootstrap, len(w)))
        lo, hi = np.percentile(w[draws].mean(axis=1), [2.5, 97.5])
        out["win_rate_ci"] = [round(float(lo), 4), round(float(hi), 4)]
    return out
