"""Macro-F1, accuracy and persona share with bootstrap intervals over prompts.

A test set is a list of items (true label, predicted label, group). The group is the prompt: the
tested model's reply and the base model's reply to the same prompt form one group, so a bootstrap
resample draws prompts, never single replies (a reply pair stays together, as it was generated).
Macro-F1 averages per-class F1 over the classes present in the set's true labels (a class the
classifier invents but nobody holds costs precision, not a zero-F1 row of its own). Persona share is
the share of the tested model's replies that the classifier calls the persona (its recall): the
number that moves when a suffix makes the persona drop.

Intervals are percentile bootstrap (2.5 %, 97.5 %) with `bootstrap` resamples drawn once per call
and shared across every set in it, so the mean over attack variants gets an interval from the same
draws. Everything is vectorised: counts per group, summed per draw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class ScoredSet:
    """Items of one condition (a variant, the prefill attack, a drift turn)."""

    true: list[str] = field(default_factory=list)
    pred: list[str] = field(default_factory=list)
    group: list[int] = field(default_factory=list)

    def add(self, true: str, pred: str, group: int) -> None:
        self.true.append(true)
        self.pred.append(pred)
        self.group.append(group)

    def __len__(self) -> int:
        return len(self.true)


def _counts(ts: ScoredSet, classes: list[str], positive: str, n_groups: int) -> np.ndarray:
    """(groups, classes + 2, 3): per class (tp, fp, fn); row `classes`: (correct, items, 0); row
    `classes + 1`: (positive-true items predicted positive, positive-true items, 0)."""
    c_index = {c: i for i, c in enumerate(classes)}
    k = len(classes)
    out = np.zeros((n_groups, k + 2, 3), dtype=np.int64)
    for t, p, g in zip(ts.true, ts.pred, ts.group, strict=True):
        ti, pi = c_index[t], c_index.get(p)
        if p == t:
            out[g, ti, 0] += 1
            out[g, k, 0] += 1
        else:
            out[g, ti, 2] += 1
            if pi is not None:
                out[g, pi, 1] += 1
        out[g, k, 1] += 1
        if t == positive:
            out[g, k + 1, 1] += 1
            out[g, k + 1, 0] += p == positive
    return out


def _stats(tot: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From summed counts (..., classes + 2, 3): macro-F1, accuracy, positive share (NaN when undefined)."""
    k = tot.shape[-2] - 2
    tp, fp, fn = tot[..., :k, 0], tot[..., :k, 1], tot[..., :k, 2]
    denom = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), np.nan)
        f1 = np.where(present, f1, np.nan)
        macro = np.nanmean(np.where(np.isnan(f1).all(axis=-1, keepdims=True), 0.0, f1), axis=-1)
        acc = tot[..., k, 0] / np.where(tot[..., k, 1] > 0, tot[..., k, 1], np.nan)
        share = tot[..., k + 1, 0] / np.where(tot[..., k + 1, 1] > 0, tot[..., k + 1, 1], np.nan)
    return macro, acc, share


def _ci(draws: np.ndarray) -> list[float] | None:
    d = draws[~np.isnan(draws)]
    if d.size == 0:
        return None
    lo, hi = np.percentile(d, [2.5, 97.5])
    return [round(float(lo), 4), round(float(hi), 4)]


def _r(x: Any) -> float | None:
    """A 0-d statistic as a rounded float; None when it is undefined (NaN)."""
    return None if x is None or np.isnan(x) else round(float(x), 4)


def score_sets(
    sets: dict[str, ScoredSet],
    *,
    positive: str,
    bootstrap: int = 1000,
    seed: int = 0,
    mean_over: list[str] | None = None,
) -> dict[str, Any]:
    """Per set: n, macro_f1, accuracy, persona_share, each with a 95 % bootstrap interval. With
    `mean_over` (set names), also `mean` = their mean macro-F1 with an interval from the same draws."""
    sets = {k: v for k, v in sets.items() if len(v)}
    if not sets:
        return {}
    classes = sorted({lab for ts in sets.values() for lab in ts.true})
    n_groups = max(g for ts in sets.values() for g in ts.group) + 1
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_groups, size=(bootstrap, n_groups)) if bootstrap else None
    out: dict[str, Any] = {}
    boot_f1: dict[str, np.ndarray] = {}
    for name, ts in sets.items():
        counts = _counts(ts, classes, positive, n_groups)
        present = np.array([c in set(ts.true) for c in classes])
        f1, acc, share = _stats(counts.sum(axis=0), present)
        row: dict[str, Any] = {
            "n": len(ts),
            "macro_f1": _r(f1),
            "accuracy": _r(acc),
            "persona_share": _r(share),
        }
        if draws is not None:
            bf1, bacc, bshare = _stats(counts[draws].sum(axis=1), present)
            boot_f1[name] = bf1
            row.update(macro_f1_ci=_ci(bf1), accuracy_ci=_ci(bacc), persona_share_ci=_ci(bshare))
        out[name] = row
    names = [n for n in (mean_over or []) if n in out]
    if names:
        mean = float(np.mean([out[n]["macro_f1"] for n in names]))
        row = {"sets": names, "macro_f1": _r(mean)}
        if draws is not None:
            row["macro_f1_ci"] = _ci(np.nanmean(np.stack([boot_f1[n] for n in names]), axis=0))
        out["mean"] = row
    return out
