"""Bradley-Terry on hand-computable cases; bootstrap intervals contain the estimate and narrow."""

from __future__ import annotations

import math

import numpy as np
import pytest

from character.eval.elo import ELO_SCALE, Match, fit_bt, ratings, win_rates


def test_two_players_match_the_closed_form() -> None:
    # A beats B 3 times out of 4: the MLE odds are 3:1, a gap of 400 * log10(3) = 190.85 Elo.
    ms = [Match("A", "B", 1, f"p{i}") for i in range(3)] + [Match("A", "B", 0, "p3")]
    r = ratings(ms, anchor="B", bootstrap=0, l2=0.0)
    assert r["B"]["rating"] == 1000.0
    assert r["A"]["rating"] == pytest.approx(1000 + 400 * math.log10(3), abs=0.1)
    # The default small penalty moves it by less than a couple of points.
    assert ratings(ms, anchor="B", bootstrap=0)["A"]["rating"] == pytest.approx(1190.85, abs=2.0)


def test_ties_count_half_and_order_does_not_matter() -> None:
    ms = [
        Match("A", "B", 1, "p0"),
        Match("A", "B", 0.5, "p1"),
        Match("B", "A", 1, "p2"),
        Match("A", "B", 0.5, "p3"),
    ]
    # A scores 1 + .5 + 0 + .5 = 2 of 4: equal strengths.
    r = ratings(ms, anchor="B", bootstrap=0, l2=0.0)
    assert r["A"]["rating"] == pytest.approx(1000.0, abs=1e-6)
    assert ratings(list(reversed(ms)), anchor="B", bootstrap=0, l2=0.0) == r


def test_three_player_fit_satisfies_the_likelihood_equations() -> None:
    rng = np.random.default_rng(0)
    true = np.array([0.0, 1.0, -0.5])
    pairs = rng.integers(0, 3, size=(600, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    p = 1 / (1 + np.exp(true[pairs[:, 1]] - true[pairs[:, 0]]))
    y = (rng.random(len(p)) < p).astype(float)
    theta = fit_bt(pairs, y, 3, l2=0.0)
    # At the MLE each player's expected score equals its actual score.
    fitted = 1 / (1 + np.exp(theta[pairs[:, 1]] - theta[pairs[:, 0]]))
    for k in range(3):
        exp_score = fitted[pairs[:, 0] == k].sum() + (1 - fitted[pairs[:, 1] == k]).sum()
        act_score = y[pairs[:, 0] == k].sum() + (1 - y[pairs[:, 1] == k]).sum()
        assert exp_score == pytest.approx(act_score, abs=1e-6)
    assert np.argsort(theta).tolist() == [2, 0, 1]


def test_a_clean_sweep_stays_finite() -> None:
    r = ratings([Match("A", "B", 1, f"p{i}") for i in range(10)], anchor="B", bootstrap=20)
    assert 1000 < r["A"]["rating"] < 5000 and math.isfinite(r["A"]["ci_high"])


def _sample(n_prompts: int, seed: int) -> list[Match]:
    rng = np.random.default_rng(seed)
    p_win = 1 / (1 + math.exp(-150 / ELO_SCALE))  # T is 150 Elo above B
    out = []
    for i in range(n_prompts):
        for _k in range(3):
            out.append(Match("T", "B", float(rng.random() < p_win), f"p{i}", 100, 100))
    return out


def test_bootstrap_interval_contains_the_estimate_and_narrows() -> None:
    small = ratings(_sample(20, 1), anchor="B", bootstrap=300, seed=1)["T"]
    large = ratings(_sample(400, 1), anchor="B", bootstrap=300, seed=1)["T"]
    for r in (small, large):
        assert r["ci_low"] <= r["rating"] <= r["ci_high"]
    assert (large["ci_high"] - large["ci_low"]) < 0.5 * (small["ci_high"] - small["ci_low"])
    assert large["ci_low"] < 1150 < large["ci_high"]


def test_length_controlled_win_rate_removes_a_length_only_advantage() -> None:
    ms = []
    for i in range(40):
        longer = i % 2 == 0  # T is longer in half the matches and wins exactly those
        ms.append(
            Match("T", "B", 1.0 if longer else 0.0, f"p{i}", 400 if longer else 100, 100 if longer else 400)
        )
        ms.append(
            Match("B", "T", 0.0 if longer else 1.0, f"q{i}", 100 if longer else 400, 400 if longer else 100)
        )
    # Make T win more often overall, but only when longer.
    ms += [Match("T", "B", 1.0, f"r{i}", 400, 100) for i in range(60)]
    w = win_rates(ms, "T", "B")
    assert w["raw"] > 0.55
    assert w["length_controlled"] < w["raw"] - 0.1
    assert "warning" in w
    same_len = [Match("T", "B", 1.0 if i % 4 else 0.0, f"p{i}", 100, 100) for i in range(40)]
    w2 = win_rates(same_len, "T", "B")
    assert w2["length_controlled"] == w2["raw"] == 0.75
