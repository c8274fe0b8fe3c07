"""The coherence judge: each tested checkpoint against the base model prompted with the persona.

Judged in both orders by `character.eval.judge` (paper 2.4): a win or a loss counts only when both
orders agree; a disagreement is inconsistent and an unparsed verdict is counted apart, never as a tie
or a win. The win rate is over consistent verdicts, with a bootstrap interval over pairs.
"""

from __future__ import annotations

from typing import Any

from character.config import RunConfig
from character.constitutions import Constitution
from character.eval.judge import constitution_criteria, judge_pairs, judge_stats
from character.eval.robustness.replies import Replies, Source
from character.eval.robustness.suffixes import DEFAULT_ID
from character.eval.target import Generator, resolve_target


def coherence(
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
