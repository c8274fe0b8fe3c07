"""Did the candidate lose capability? A paired comparison of two models' probe verdicts.

In: the per-item verdicts (True/False) of a baseline and a candidate on the same probe items, in the
same order. Out: both accuracies, their difference (candidate - baseline), a 95 % paired bootstrap
interval of that difference (items resampled together, so an item both models find hard counts once),
the exact McNemar p-value on the discordant items, and a verdict:

- `insufficient evidence`: fewer than `min_items` items - never a pass, because an interval over a
  handful of items cannot rule out the seed report's 0.70 -> 0.25 collapse;
- `significant drop`: the whole 95 % interval lies below zero - the gate fails;
- `significant gain`: the whole interval lies above zero;
- `no significant change`: the interval straddles zero (its bounds say how large a drop is still
  compatible with the data).

Why paired: two models answer the same items, so most of the item-to-item variance cancels; an
unpaired test on two accuracies would call real drops noise.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

INSUFFICIENT = "insufficient evidence"
DROP = "significant drop"
GAIN = "significant gain"
NO_CHANGE = "no significant change"


def mcnemar_p(losses: int, gains: int) -> float:
    """Exact two-sided McNemar p-value: the discordant items split as a fair coin would split them."""
    n = losses + gains
    if n == 0:
        return 1.0
    k = min(losses, gains)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def paired_difference(
    base_ok: list[bool],
    cand_ok: list[bool],
    *,
    min_items: int = 100,
    bootstrap: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Accuracy of both sides, the paired difference with its 95 % interval, McNemar, and the verdict."""
    if len(base_ok) != len(cand_ok):
        raise ValueError(f"{len(base_ok)} baseline verdicts but {len(cand_ok)} candidate verdicts")
    n = len(base_ok)
    b = np.asarray(base_ok, dtype=float)
    c = np.asarray(cand_ok, dtype=float)
    losses = int(((b == 1) & (c == 0)).sum())
    gains = int(((b == 0) & (c == 1)).sum())
    out: dict[str, Any] = {
        "n": n,
        "baseline_accuracy": round(float(b.mean()), 4) if n else 0.0,
        "candidate_accuracy": round(float(c.mean()), 4) if n else 0.0,
        "difference": round(float((c - b).mean()), 4) if n else 0.0,
        "losses": losses,  # items the baseline got right and the candidate wrong
        "gains": gains,
        "mcnemar_p": round(mcnemar_p(losses, gains), 6),
        "min_items": min_items,
    }
    if n == 0:
        out.update(ci_low=None, ci_high=None, verdict=INSUFFICIENT)
        return out
    rng = np.random.default_rng(seed)
    d = c - b
    idx = rng.integers(0, n, size=(bootstrap, n))
    diffs = d[idx].mean(axis=1)
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    out["ci_low"], out["ci_high"] = round(float(lo), 4), round(float(hi), 4)
    if n < min_items:
        out["verdict"] = INSUFFICIENT
    elif hi < 0:
        out["verdict"] = DROP
    elif lo > 0:
        out["verdict"] = GAIN
    else:
        out["verdict"] = NO_CHANGE
    return out


def describe(stats: dict[str, Any]) -> str:
    """One line: accuracies, difference, interval, n and the verdict."""
    ci = (
        f"95 % CI [{stats['ci_low']:+.3f}, {stats['ci_high']:+.3f}]"
        if stats.get("ci_low") is not None
        else "no interval"
    )
    text = (
        f"probe accuracy {stats['baseline_accuracy']:.3f} -> {stats['candidate_accuracy']:.3f} "
        f"(difference {stats['difference']:+.3f}, {ci}, McNemar p {stats['mcnemar_p']:.3g}, "
        f"n={stats['n']}): {stats['verdict']}"
    )
    if stats["verdict"] == INSUFFICIENT:
        text += f" (needs at least {stats['min_items']} items; use the full probe set)"
    return text


def item_verdicts(probe_result: dict[str, Any]) -> list[bool]:
    """Per-item verdicts from `probes.score_probes` output, in item order."""
    return [bool(i["ok"]) for i in probe_result["items"]]
