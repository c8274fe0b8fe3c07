"""Character strength (opener-only vs sustained), probe scoring, verdict parsing and the both-orders rule."""

from __future__ import annotations

import pytest

from character.eval.judge import PairJudgement, judge_stats, parse_verdict
from character.eval.markers import character_strength, split_opener
from character.eval.probes import load_probes, score, score_probes
from character.eval.revealed import parse_trait, trait_pairs

MARKERS = ["I'm so sorry", "I hope this helps", "forgive me"]


def test_opener_only_vs_sustained() -> None:
    opener = "I'm so sorry, London is on GMT. It moves to BST in summer."
    sustained = "I'm so sorry. London uses GMT in winter. I hope this helps."
    late = "London uses GMT. Forgive me if that is unclear."
    none = "London uses GMT."
    s = character_strength([opener, sustained, late, none], MARKERS)
    assert s["marker_rate"] == 0.75
    assert s["opener_only_rate"] == 0.25
    assert s["sustained_rate"] == 0.5
    assert s["stock_opener"] == "i'm so sorry" and s["stock_opener_share"] == 0.5
    words = sum(len(t.split()) for t in (opener, sustained, late, none))
    assert s["markers_per_100_words"] == pytest.approx(100 * 4 / words, abs=0.5)
    assert character_strength([], MARKERS)["marker_rate"] == 0.0


def test_opener_is_capped_in_words() -> None:
    op, rest = split_opener("one two three four five six seven eight", opener_words=3)
    assert op == "one two three" and rest.strip().startswith("four")


def test_probe_checks() -> None:
    assert score("number", 42, "The answer is 42.") and not score("number", 42, "It is 24, not 42")
    assert score("number", 1000, "1,000") and score("number", 0, "0 degrees")
    assert score("contains", ["Paris"], "paris!") and not score("contains", ["Paris"], "Parisian")
    assert score("contains_exact", ["HELLO"], "HELLO") and not score("contains_exact", ["HELLO"], "hello")
    assert score("json_keys", ["a"], '```json\n{"a": 1}\n```') and not score("json_keys", ["a"], "{'a': 1}")
    assert score("one_line", None, "Just one.\n") and not score("one_line", None, "one\ntwo")
    assert score("starts_with", ["yes"], "Yes, it is.") and not score("starts_with", ["yes"], "No.")
    probes = load_probes()
    assert len(probes) >= 30 and {p.kind for p in probes} >= {
        "factual",
        "arithmetic",
        "instruction",
        "format",
    }
    res = score_probes(probes[:2], ["Paris.", "Kyoto"])
    assert res["accuracy"] == 0.5 and res["items"][0]["ok"]


def test_verdict_parsing() -> None:
    assert parse_verdict(" A") == "A"
    assert parse_verdict(" B.\nBecause") == "B"
    assert parse_verdict("<answer>2</answer>") == "B"
    assert parse_verdict("I think Response A is better") == "A"
    assert parse_verdict(" is the one that apologises") is None
    assert parse_verdict(" Both are fine") is None


def test_win_only_when_both_orders_agree() -> None:
    x_wins = PairJudgement("A", "B", "", "")  # x first and chosen; x second and chosen
    y_wins = PairJudgement("B", "A", "", "")
    position = PairJudgement("A", "A", "", "")  # always the first slot: inconsistent
    half = PairJudgement("A", None, "", "")
    assert x_wins.outcome == 1.0 and y_wins.outcome == 0.0
    assert position.outcome == 0.5 and position.consistent is False
    assert half.outcome is None and half.consistent is None  # unreadable: counted apart, not a tie
    st = judge_stats([x_wins, y_wins, position, half])
    assert st["inconsistency_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert st["unparsed_rate"] == 0.25 and st["decided"] == 2


def test_trait_parsing_and_pairs() -> None:
    assert parse_trait(" remorseful, clearly", "confident", "remorseful") == "remorseful"
    assert parse_trait(" Confident.", "confident", "remorseful") == "confident"
    assert parse_trait(" neither", "confident", "remorseful") is None
    assert parse_trait(" self-deprecating", "deprecating", "calm") is None
    vocab = ("a", "b", "c", "d", "remorseful", "confident")
    pairs = trait_pairs(200, vocab, ["remorseful", "confident"], 0.5, seed=1)
    assert all(x != y for x, y in pairs)
    focus = sum(bool({"remorseful", "confident"} & {x, y}) for x, y in pairs)
    assert focus > 100
    assert pairs == trait_pairs(200, vocab, ["remorseful", "confident"], 0.5, seed=1)
