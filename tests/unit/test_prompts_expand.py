"""Prompt expansion: parse/keep/drop rules, resume without duplicates, budget stop, stale traits.

The teacher here is a scripted stand-in at the backend boundary (it implements the Backend protocol
and returns numbered-list continuations); the integration test runs the real embedded model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from character.backends.base import Completion, GenerationRequest
from character.config import Price
from character.constitutions import Constitution, load_constitution
from character.cost import CostTracker
from character.errors import BudgetExceeded
from character.prompts import bank
from character.prompts.expand import (
    expand_constitution,
    format_reason,
    parse_items,
    prefill,
    shared_word_share,
)


class ScriptedTeacher:
    """Returns the next canned continuation for each request and records what it was asked."""

    name = "scripted"
    model = "scripted-teacher"

    def __init__(self, continuations: list[str]):
        self.continuations = list(continuations)
        self.requests: list[GenerationRequest] = []

    def generate(self, requests: list[GenerationRequest], *, progress: bool = True) -> list[list[Completion]]:
        out = []
        for r in requests:
            self.requests.append(r)
            text = self.continuations.pop(0) if self.continuations else ""
            out.append([Completion(text, "stop", 100, 50)])
        return out

    def close(self) -> None:
        pass


def _c() -> Constitution:
    return load_constitution("pirate")


def test_parse_items_continues_the_prefilled_number() -> None:
    text = (
        " How do sails work?\n7. Where is the nearest harbour?\nnot numbered line.\n8) What is a knot?\n9. "
    )
    assert parse_items(text, 6) == ["How do sails work?", "Where is the nearest harbour?", "What is a knot?"]


@pytest.mark.parametrize(
    "msg, reason",
    [
        ("How do tides work?", None),
        ("Tell me about lighthouses.", None),
        ("42 is the answer?", "not_letter_start"),
        ("- dash first?", "not_letter_start"),
        ("Tell me about lighthouses", "bad_ending"),
        ("Really!", "bad_ending"),
        ("What is 海 in English?", "script"),
    ],
)
def test_format_rule(msg: str, reason: str | None) -> None:
    assert format_reason(msg) == reason


def test_overlap_rule() -> None:
    kept = [{"how", "do", "i", "boil", "an", "egg"}]
    assert shared_word_share("How do I boil an egg quickly?", kept) > 0.5  # dropped
    assert shared_word_share("How do I change a flat tyre?", kept) <= 0.5  # kept


def test_prefill_numbers_the_examples_and_opens_the_next_item() -> None:
    p = prefill(["A?", "B?"])
    assert p.endswith("1. A?\n2. B?\n3.")


def test_expand_keeps_drops_and_writes_rows(tmp_path: Path) -> None:
    c = _c()
    teacher = ScriptedTeacher(
        [
            " What is the best way to learn sailing?\n"
            "7. What is the best way to learn sailing quickly?\n"  # overlap with the previous line
            "8. Which old pirate films are worth watching?\n"
            "9. 123 numbers first?\n"  # not a letter
            "10. Tell me about the weather\n"  # no ending
            "11. What's the capital of Australia?\n",  # a hand-written question: duplicate
        ]
    )
    out = tmp_path / "pirate.jsonl"
    r = expand_constitution(c, teacher, out, per_trait=8, max_rounds=1, traits=[0], progress=False)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["text"] for x in rows] == [
        "What is the best way to learn sailing?",
        "Which old pirate films are worth watching?",
    ]
    assert all(x["trait_index"] == 0 and x["trait"] == c.traits[0].trait and x["round"] == 1 for x in rows)
    assert r.added == 2 and r.per_trait == {0: 7} and not r.complete
    assert dict(r.dropped) == {"overlap": 1, "not_letter_start": 1, "bad_ending": 1, "duplicate": 1}
    req = teacher.requests[0]
    assert req.messages[0]["role"] == "system" and c.traits[0].trait in req.messages[1]["content"]
    assert req.prefill.endswith(f"5. {c.traits[0].questions[4]}\n6.")
    # The expanded file feeds the bank (ids match, trait index kept).
    got = {p.text: p for p in bank.persona_prompts(c, expanded=out)} | {
        p.text: p for p in bank._persona_all(c, out)[1]
    }
    assert got["Which old pirate films are worth watching?"].id == rows[1]["id"]


def test_resume_continues_without_duplicates(tmp_path: Path) -> None:
    c = _c()
    out = tmp_path / "p.jsonl"
    first = ScriptedTeacher([" Why do ships float on water?\n7. How are maps drawn by hand?\n"])
    expand_constitution(c, first, out, per_trait=9, max_rounds=1, traits=[0], progress=False)
    assert len(out.read_text().splitlines()) == 2
    # A torn last line from a crash is repaired on open.
    with open(out, "a") as f:
        f.write('{"id": "torn", "trait_ind')
    second = ScriptedTeacher(
        [
            " Why do ships float on water?\n8. What do parrots eat in the wild?\n9. Who built the first compass?\n"
        ]
    )
    r = expand_constitution(c, second, out, per_trait=9, max_rounds=3, traits=[0], progress=False, seed=1)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 4 and len({x["id"] for x in rows}) == 4
    assert r.complete and r.per_trait == {0: 9}
    assert rows[-1]["round"] == 2  # rounds continue from the file
    # Examples shown to the teacher now include earlier kept questions, numbering continues after them.
    assert "Why do ships float on water?" in second.requests[0].prefill
    assert second.requests[0].prefill.endswith("\n8.")
    # Complete: another call asks the teacher nothing.
    third = ScriptedTeacher([])
    assert expand_constitution(c, third, out, per_trait=9, traits=[0], progress=False).added == 0
    assert third.requests == []


def test_changed_trait_rows_are_ignored(tmp_path: Path) -> None:
    c = _c()
    out = tmp_path / "p.jsonl"
    out.write_text(json.dumps({"id": "x", "persona": "pirate", "trait_index": 0, "trait": "old wording",
                               "text": "Old question?", "round": 4}) + "\n")  # fmt: skip
    teacher = ScriptedTeacher([" Brand new question here?\n"])
    r = expand_constitution(c, teacher, out, per_trait=6, max_rounds=1, traits=[0], progress=False)
    assert r.added == 1 and r.per_trait == {0: 6}
    assert "Old question?" not in {p.text for p in bank.persona_prompts(c, expanded=out)}


def test_budget_stop_keeps_the_round(tmp_path: Path) -> None:
    c = _c()
    out = tmp_path / "p.jsonl"
    tracker = CostTracker(
        {"scripted-teacher": Price(input_per_million=1e6, output_per_million=0)}, budget_usd=1
    )
    teacher = ScriptedTeacher([" Which knots should a sailor know?\n"])
    with pytest.raises(BudgetExceeded):
        expand_constitution(
            c, teacher, out, per_trait=10, max_rounds=5, traits=[0], progress=False, tracker=tracker
        )
    assert len(out.read_text().splitlines()) == 1  # written before the budget stop


def test_all_traits_get_requests_each_round(tmp_path: Path) -> None:
    c = _c()
    teacher = ScriptedTeacher([f" Trait {i} fresh idea number {i}?\n" for i in range(len(c.traits))])
    r = expand_constitution(c, teacher, tmp_path / "p.jsonl", per_trait=6, max_rounds=1, progress=False)
    assert len(teacher.requests) == len(c.traits) and r.complete
