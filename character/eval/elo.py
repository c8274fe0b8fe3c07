"""Bradley-Terry ratings with bootstrap confidence intervals, and raw vs length-controlled win rates.

A match is (player_a, player_b, outcome) with outcome 1 (a won), 0.5 (tie) or 0 (b won), plus the
prompt it came from. The strengths maximise the logistic likelihood
`P(a beats b) = 1 / (1 + exp(theta_b - theta_a))` (a tie counts half a win each way) with a small L2
penalty so a side that wins every match keeps a finite rating. They are fitted by Newton's method in
numpy and reported on the Elo scale: `1000 + 400 / ln(10) * (theta - theta_anchor)`, so a rating
gap of 400 means 10:1 odds and the anchor (the base model) sits at 1000. Unlike sequential Elo
updates, the fit does not depend on the order of the matches.

Confidence intervals come from a bootstrap over prompts (a prompt's matches are resampled together,
which respects their correlation): the 2.5 and 97.5 percentiles of the refitted ratings.

Length control (after AlpacaEval's LC win rate, Dubois et al. 2024): regress the outcome on a side
term plus `tanh(delta_len / std(delta_len))`; the LC win rate is the prediction with the length term
at zero. Judges prefer longer replies; a win that is only length shows up as LC well below raw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

ELO_SCALE = 400.0 / math.log(10.0)
ELO_BASE = 1000.0


@dataclass
class Match:
    a: str
    b: str
    outcome: float  # 1 = a won, 0.5 = tie, 0 = b won
    prompt_id: str = ""
    len_a: int = 0
    len_b: int = 0


def fit_bt(
    pairs: np.ndarray, outcomes: np.ndarray, n_players: int, *, l2: float = 0.01, max_iter: int = 100
) -> np.ndarray:
    """Strengths (natural-log scale, mean zero) for matches `pairs[i] = (a, b)` with `outcomes[i]`.

    `l2 = 0` gives the plain maximum-likelihood fit (player 0 pinned at 0 to fix the free offset);
    it diverges when one side wins every match, which the penalty prevents.
    """
    theta = np.zeros(n_players)
    if len(pairs) == 0:
        return theta
    a, b = pairs[:, 0], pairs[:, 1]
    free = np.arange(1, n_players) if l2 == 0 else np.arange(n_players)
    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(theta[b] - theta[a]))
        r = p - outcomes
        grad = np.bincount(a, r, n_players) - np.bincount(b, r, n_players) + l2 * theta
        w = p * (1 - p)
        hess = np.zeros((n_players, n_players))
        np.add.at(hess, (a, a), w)
        np.add.at(hess, (b, b), w)
        np.add.at(hess, (a, b), -w)
        np.add.at(hess, (b, a), -w)
        hess += l2 * np.eye(n_players)
        sub = hess[np.ix_(free, free)] + 1e-12 * np.eye(len(free))
        step = np.linalg.solve(sub, grad[free])
        theta[free] -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return theta - theta.mean()


def _arrays(matches: list[Match], players: list[str]) -> tuple[np.ndarray, np.ndarray]:
    idx = {p: i for i, p in enumerate(players)}
    pairs = np.array([(idx[m.a], idx[m.b]) for m in matches], dtype=int).reshape(-1, 2)
    outcomes = np.array([m.outcome for m in matches], dtype=float)
    return pairs, outcomes


def to_elo(theta: np.ndarray, anchor: int | None = None) -> np.ndarray:
    """Elo scale; the anchor player sits at 1000 (None: the mean strength does)."""
    return ELO_BASE + ELO_SCALE * (theta - (theta[anchor] if anchor is not None else theta.mean()))


def ratings(
    matches: list[Match],
    *,
    anchor: str | None = None,
    bootstrap: int = 200,
    l2: float = 0.01,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Elo-scale Bradley-Terry ratings per player with bootstrap (over prompts) 95 % intervals.

    `anchor` is pinned at 1000 (e.g. the base model); without one the mean rating is 1000.
    """
    players = sorted({m.a for m in matches} | {m.b for m in matches})
    if not players:
        return {}
    if anchor is not None and anchor not in players:
        raise ValueError(f"anchor {anchor!r} played no match (players: {', '.join(players)})")
    anchor_i = players.index(anchor) if anchor else None
    pairs, outcomes = _arrays(matches, players)
    point = to_elo(fit_bt(pairs, outcomes, len(players), l2=l2), anchor_i)
    by_prompt: dict[str, list[int]] = {}
    for i, m in enumerate(matches):
        by_prompt.setdefault(m.prompt_id or f"#{i}", []).append(i)
    groups = list(by_prompt.values())
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(bootstrap):
        pick = rng.integers(0, len(groups), len(groups))
        rows = np.concatenate([groups[g] for g in pick])
        samples.append(to_elo(fit_bt(pairs[rows], outcomes[rows], len(players), l2=l2), anchor_i))
    counts = np.bincount(pairs.ravel(), minlength=len(players))
    out: dict[str, dict[str, Any]] = {}
    for i, p in enumerate(players):
        row: dict[str, Any] = {"rating": round(float(point[i]), 1), "matches": int(counts[i])}
        if samples:
            col = np.array([s[i] for s in samples])
            row["ci_low"] = round(float(np.percentile(col, 2.5)), 1)
            row["ci_high"] = round(float(np.percentile(col, 97.5)), 1)
            row["ci_median"] = round(float(np.median(col)), 1)
        out[p] = row
    return out


def _logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, max_iter: int = 100) -> np.ndarray:
    """Logistic regression with soft labels in [0, 1] (a tie is 0.5), Newton's method, small L2."""
    beta = np.zeros(x.shape[1])
    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(-(x @ beta)))
        grad = x.T @ (p - y) + l2 * beta
        hess = (x * (p * (1 - p))[:, None]).T @ x + l2 * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return beta


def win_rates(matches: list[Match], player: str, opponent: str) -> dict[str, Any]:
    """Raw and length-controlled win rate of `player` against `opponent` (ties count half)."""
    ys, dl = [], []
    for m in matches:
        if {m.a, m.b} != {player, opponent}:
            continue
        mine = m.a == player
        ys.append(m.outcome if mine else 1.0 - m.outcome)
        dl.append((m.len_a - m.len_b) if mine else (m.len_b - m.len_a))
    n = len(ys)
    if not n:
        return {"n": 0, "raw": None, "length_controlled": None}
    y, d = np.array(ys), np.array(dl, dtype=float)
    raw = float(y.mean())
    sd = float(d.std())
    if sd == 0 or n < 4:
        lc = raw
    else:
        x = np.column_stack([np.ones(n), np.tanh(d / sd)])
        beta = _logistic(x, y)
        lc = float(1.0 / (1.0 + math.exp(-beta[0])))
    out: dict[str, Any] = {
        "n": n,
        "wins": int((y == 1).sum()),
        "ties": int((y == 0.5).sum()),
        "losses": int((y == 0).sum()),
        "raw": round(raw, 4),
        "length_controlled": round(lc, 4),
        "mean_len_diff": round(float(d.mean()), 1),
    }
    if abs(lc - raw) > 0.1:
        out["warning"] = (
            "length-controlled and raw win rates differ by more than 10 points: the judge rewards length"
        )
    return out
