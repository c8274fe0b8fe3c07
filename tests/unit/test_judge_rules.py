"""Judged results that cannot mislead: an unreadable verdict is counted apart (never a tie) and more than
`eval.max_unparsed_share` of them refuses the result; a judge that is one of the contestants is refused
unless allowed; revealed-preference ratings and deltas carry bootstrap intervals."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from character.config import RunConfig
from character.constitutions import load_constitution
from character.eval.arena import sample_matches, score_matches
from character.eval.elo import Match, ratings
from character.eval.judge import JudgeRefused, PairJudgement, judge_stats, refuse_contestant_judge
from character.eval.revealed import Side, compare_sides, trait_vocabulary
from character.eval.target import Generator, resolve_target


def test_an_unreadable_verdict_is_not_a_tie() -> None:
    assert PairJudgement("A", "B", "", "").outcome == 1.0  # x first and x second: x wins
    assert PairJudgement("B", "A", "", "").outcome == 0.0
    assert PairJudgement("A", "A", "", "").outcome == 0.5  # the orders disagree: a tie
    assert PairJudgement(None, "B", "", "").outcome is None
    assert PairJudgement("A", None, "", "").outcome is None
    stats = judge_stats([PairJudgement("A", "B", "", ""), PairJudgement(None, None, "", "")])
    assert stats["unparsed"] == 1 and stats["decided"] == 1 and stats["unparsed_rate"] == 0.5


def _matches_file(path: Path, readable: int, unreadable: int, legacy: int = 0) -> Path:
    rows: list[dict[str, Any]] = []
    for i in range(readable):
        rows.append(
            {"prompt_id": f"p{i}", "model_a": "base", "model_b": "tuned", "outcome": 0.0, "consistent": True}
        )
    for i in range(unreadable):
        rows.append(
            {"prompt_id": f"u{i}", "model_a": "base", "model_b": "tuned", "outcome": None, "consistent": None}
        )
    for i in range(legacy):  # files written before this rule stored an unreadable verdict as 0.5
        rows.append(
            {"prompt_id": f"l{i}", "model_a": "base", "model_b": "tuned", "outcome": 0.5, "consistent": None}
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_scoring_leaves_unreadable_pairs_out_and_refuses_too_many(tmp_path: Path) -> None:
    ok = score_matches(_matches_file(tmp_path / "ok.jsonl", 9, 1), bootstrap=0)
    assert ok["matches"] == 9 and ok["unparsed"] == 1 and ok["judge"]["unparsed_rate"] == 0.1
    # tuned won all 9 readable matches; had the unread one counted as a tie, the raw rate would be 0.95.
    assert ok["win_rates"]["tuned"]["raw"] == 1.0 and ok["win_rates"]["tuned"]["n"] == 9
    with pytest.raises(JudgeRefused, match=r"could not be read in 2 of 10 judgements \(20% > "):
        score_matches(_matches_file(tmp_path / "bad.jsonl", 8, 2), bootstrap=0)
    with pytest.raises(JudgeRefused, match="2 of 10"):
        score_matches(_matches_file(tmp_path / "legacy.jsonl", 8, 0, legacy=2), bootstrap=0)
    assert (
        score_matches(_matches_file(tmp_path / "lax.jsonl", 8, 2), bootstrap=0, max_unparsed_share=0.25)[
            "matches"
        ]
        == 8
    )


class _NoGeneration:
    """A backend that fails the test if anything is generated (the refusal must come first)."""

    def generate(self, *a: Any, **k: Any) -> Any:
        raise AssertionError("generated before refusing")

    def close(self) -> None:
        pass


def test_a_judge_that_is_a_contestant_is_refused_before_any_work(tiny_model: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model, copy)
    base, judge = resolve_target(str(tiny_model)), resolve_target(str(copy))
    with pytest.raises(JudgeRefused, match="identical weights"):
        refuse_contestant_judge(judge, [base], allow=False)
    refuse_contestant_judge(judge, [base], allow=True)
    cfg = RunConfig()
    gens = {
        k: Generator(cfg, t, backend=_NoGeneration())
        for k, t in (("base", base), ("tuned", base), ("judge", judge))
    }
    with pytest.raises(JudgeRefused, match="also a contestant"):
        sample_matches(
            cfg,
            **gens,
            criteria="x",
            prompts=[("p", "hi")],
            samples_per_prompt=1,
            output=tmp_path / "m.jsonl",
            progress=False,
        )
    assert not (tmp_path / "m.jsonl").exists()


def _side(label: str, winner_of: dict[str, float], n: int, unparsed: int, seed: int) -> Side:
    """Revealed-preference matches between traits; `winner_of[t]` is how often trait t wins its matches."""
    rng = random.Random(seed)
    traits = sorted(winner_of)
    rows, matches = [], []
    for i in range(n):
        a, b = rng.sample(traits, 2)
        p = winner_of[a] / (winner_of[a] + winner_of[b])
        bad = i < unparsed
        rows.append(
            {"prompt_id": f"p{i}", "winner": None, "consistent": None if bad else True, "unparsed": bad}
        )
        if not bad:
            matches.append(Match(a, b, 1.0 if rng.random() < p else 0.0, f"p{i}"))
    return Side(label, rows, ratings(matches, bootstrap=50, seed=seed), matches)


def test_revealed_ratings_and_deltas_carry_intervals_and_unreadable_answers_are_counted() -> None:
    c = load_constitution("remorseful")
    strengths = {"remorseful": 1.0, "cheerful": 1.0, "curious": 1.0, "formal": 1.0}
    before = _side("base", strengths, 200, 0, 1)
    after = _side("tuned", {**strengths, "remorseful": 6.0}, 200, 10, 2)
    res = compare_sides(before, after, c, trait_vocabulary(), bootstrap=60, seed=0, max_unparsed_share=0.1)
    row = res["focus"]["remorseful"]
    assert row["delta"] > 0 and row["before_ci"][0] <= row["before"] <= row["before_ci"][1]
    lo, hi = row["delta_ci"]
    assert lo > 0 and lo <= row["delta"] <= hi  # a real rise: the whole interval is above zero
    assert res["judge"]["after"]["unparsed"] == 10 and res["judge"]["before"]["unparsed"] == 0
    with pytest.raises(JudgeRefused, match="revealed preferences of tuned"):
        compare_sides(
            before, _side("tuned", strengths, 100, 20, 3), c, trait_vocabulary(), max_unparsed_share=0.1
        )
