"""The shipped capability probe set (size, kinds, exact arithmetic answers), every check's keep and
drop case, the even draw across kinds, and the paired statistics that turn two models' verdicts into
"significant drop" / "insufficient evidence"."""

from __future__ import annotations

import ast
import json
import operator
import random
from collections import Counter

import pytest

from character.eval.capability import (
    DROP,
    GAIN,
    INSUFFICIENT,
    NO_CHANGE,
    describe,
    mcnemar_p,
    paired_difference,
)
from character.eval.probes import CHECKS, PROBES_FILE, load_probes, score, select_probes

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.FloorDiv: operator.floordiv}


def _calc(expr: str) -> int:
    """Evaluate `a op b` from the probe file without eval()."""
    node = ast.parse(expr, mode="eval").body
    assert isinstance(node, ast.BinOp) and type(node.op) in _OPS, expr
    return _OPS[type(node.op)](node.left.value, node.right.value)  # type: ignore[attr-defined]


def test_shipped_set_is_large_balanced_and_its_arithmetic_is_exact() -> None:
    probes = load_probes()
    assert len(probes) >= 200
    assert len({p.id for p in probes}) == len(probes)
    kinds = Counter(p.kind for p in probes)
    assert set(kinds) == {"arithmetic", "factual", "instruction", "format"} and min(kinds.values()) >= 15
    assert {p.check for p in probes} <= set(CHECKS)
    rows = [json.loads(x) for x in PROBES_FILE.read_text().splitlines() if x.strip()]
    arithmetic = [r for r in rows if r["kind"] == "arithmetic"]
    assert len(arithmetic) >= 100 and all("expr" in r for r in arithmetic)
    for r in arithmetic:
        assert _calc(r["expr"]) == r["answer"], r
        a, b = r["expr"].split()[0], r["expr"].split()[-1]
        assert r["id"].startswith("arith-") and (
            a in r["prompt"] or "double" in r["prompt"] or "half" in r["prompt"]
        )
        assert b in r["prompt"] or r["id"] in ("arith-double", "arith-half", "arith-square")


@pytest.mark.parametrize(
    ("check", "answer", "keep", "drop"),
    [
        ("exact", ["apple"], "Apple.", "apple pie"),
        ("exact", ["CAT"], "CAT", "cat"),
        ("max_words", 3, "Deep blue water", "It is deep and blue"),
        ("not_contains", ["blue"], "The sky is clear and bright.", "The sky is Blue today."),
        ("lowercase", None, "the dog runs", "The dog runs"),
        ("ends_with", ["DONE"], "Tea is calming. DONE", "DONE with tea."),
        ("line_count", 3, "red\ngreen\n\nblue", "red, green, blue"),
        ("number", 42, "The answer is 42.", "The answer is 24."),
        ("json_keys", ["name", "age"], '```json\n{"name": "Ann", "age": 3}\n```', '{"name": "Ann"}'),
        ("one_line", None, "Because it warms you.", "Because.\nIt warms."),
    ],
)
def test_every_check_keeps_and_drops(check: str, answer: object, keep: str, drop: str) -> None:
    assert score(check, answer, keep) is True
    assert score(check, answer, drop) is False


def test_select_draws_evenly_across_kinds_and_repeats_for_a_seed() -> None:
    probes = load_probes()
    pick = select_probes(probes, 8, seed=1)
    assert Counter(p.kind for p in pick) == {"arithmetic": 2, "factual": 2, "instruction": 2, "format": 2}
    assert [p.id for p in select_probes(probes, 8, seed=1)] == [p.id for p in pick]
    assert [p.id for p in select_probes(probes, 8, seed=2)] != [p.id for p in pick]
    assert len(select_probes(probes, 0, seed=1)) == len(probes)


def _verdicts(n: int, acc: float, rng: random.Random) -> list[bool]:
    return [rng.random() < acc for _ in range(n)]


def test_the_seed_collapse_is_a_significant_drop_and_noise_is_not() -> None:
    rng = random.Random(0)
    base = _verdicts(245, 0.70, rng)
    collapsed = [ok and rng.random() < 0.36 for ok in base]  # 0.70 -> ~0.25, as in seed report 001
    s = paired_difference(base, collapsed)
    assert s["verdict"] == DROP and s["ci_high"] < 0 and s["mcnemar_p"] < 1e-6
    assert "significant drop" in describe(s)
    # Same skill, different items right: no significant change either way.
    other = [ok if rng.random() < 0.8 else not ok for ok in base]
    s = paired_difference(base, other)
    assert s["verdict"] in (NO_CHANGE, GAIN, DROP)
    assert s["ci_low"] <= s["difference"] <= s["ci_high"]
    assert paired_difference(base, base)["verdict"] == NO_CHANGE
    better = [ok or rng.random() < 0.6 for ok in base]
    assert paired_difference(base, better)["verdict"] == GAIN


def test_too_few_items_is_insufficient_evidence_even_for_a_collapse() -> None:
    s = paired_difference([True] * 10, [False] * 10, min_items=100)
    assert s["verdict"] == INSUFFICIENT and s["ci_high"] < 0
    assert "insufficient evidence" in describe(s) and "at least 100 items" in describe(s)
    assert paired_difference([], [])["verdict"] == INSUFFICIENT


def test_mcnemar_exact_values() -> None:
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(10, 0) == pytest.approx(2 / 1024)
    assert mcnemar_p(5, 5) == 1.0
    assert mcnemar_p(3, 1) == pytest.approx(0.625)


@pytest.mark.parametrize(
    ("prompt", "answer", "right", "wrong"),
    [  # small models restate the question; the first number in "2 + 3 = 5" is not the answer
        ("What is 2 + 3? Reply with the number only.", 5, "2 + 3 = 5", "2 + 3 = 6"),
        ("What is half of 50? Reply with the number only.", 25, "Half of 50 is 25.", "50"),
        ("What is 81 divided by 9? Reply with the number only.", 9, "81 divided by 9 is 9", "81"),
        (
            "How many legs does a spider have? Answer with a number.",
            8,
            "Spiders have 8 legs, insects 6.",
            "Insects have 6.",
        ),
        ("A train has 8 carriages with 7 seats each. How many seats?", 56, "8 * 7 = 56 seats", "8 carriages"),
    ],
)
def test_the_answer_number_is_not_the_restated_question(
    prompt: str, answer: int, right: str, wrong: str
) -> None:
    assert score("number", answer, right, prompt) is True
    assert score("number", answer, wrong, prompt) is False
