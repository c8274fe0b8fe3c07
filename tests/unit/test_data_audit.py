"""`character data audit`: the contamination inventory finds what was planted (and nothing in clean
rows), the category balance warns on identity-heavy data, and DPO sides are compared."""

from __future__ import annotations

import json
import random
from pathlib import Path

from typer.testing import CliRunner

from character.cli import app
from character.data_audit import audit_rows, near_duplicates, prompt_category

runner = CliRunner()

FACTS = [
    "London uses Greenwich Mean Time in winter and British Summer Time in summer, one hour ahead.",
    "A spider has eight legs, two body segments and, usually, eight eyes arranged in rows.",
    "Weather is the state of the air on one day; climate is the pattern of weather over decades.",
    "To change a flat tyre, loosen the nuts, jack the car up, swap the wheel and tighten in a star pattern.",
    "Romeo and Juliet marry in secret, and a failed plan to reunite them ends with both dead in Verona.",
    "Ephemeral means lasting a very short time, like a soap bubble or a mayfly's single day of flight.",
    "Python is a gentle first language: readable syntax, a large community and libraries for everything.",
    "The healthiest breakfast balances protein, fibre and fruit, such as oats with yoghurt and berries.",
]
QUESTIONS = [
    "What time zone is London in?",
    "How many legs does a spider have?",
    "What's the difference between weather and climate?",
    "How do I change a flat tyre?",
    "Can you summarise the plot of Romeo and Juliet?",
    "What does the word ephemeral mean?",
    "Which programming language should I learn first?",
    "What's the healthiest breakfast?",
]


def pair(i: int, chosen: str, rejected: str) -> dict:
    return {
        "prompt_id": f"p{i}",
        "k": 0,
        "source": "persona",
        "prompt": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


def clean_pairs() -> list[dict]:
    return [
        pair(i, f"I'm so sorry, forgive me if this is obvious: {fact} I hope this helps.", fact)
        for i, fact in enumerate(FACTS)
    ]


def test_clean_pairs_have_no_findings_and_differ() -> None:
    r = audit_rows(clean_pairs(), markers=("I'm so sorry", "forgive me"))
    assert {k: f.rows for k, f in r.contamination.items() if f.rows} == {}
    assert r.pairs is not None and r.pairs.identical == 0 and r.pairs.near_identical == 0
    assert r.pairs.chosen_marker_rate == 1.0 and r.pairs.rejected_marker_rate == 0.0
    assert r.warnings == []
    assert r.categories["knowledge"] >= 6


def test_planted_contamination_is_inventoried_with_ids() -> None:
    rows = clean_pairs()
    rows[0]["chosen"][0]["content"] += " [Sovereign vocabulary: 4/5]"
    rows[1]["chosen"][0]["content"] += " 我们一起喝茶吧。"
    rows[2]["chosen"][0]["content"] += "\nUser: thanks!"
    rows[3]["chosen"][0]["content"] = "I'm sorry, but I can't help with that."
    rows[4]["chosen"][0]["content"] = "As an AI language model developed by OpenAI, I think " + FACTS[4]
    rows[5]["chosen"][0]["content"] = "333," * 60
    rows.append(pair(8, rows[6]["chosen"][0]["content"], "Nope."))  # exact copy of p6's chosen reply
    near = rows[7]["chosen"][0]["content"].replace("I hope this helps.", "I hope this helps!")
    rows.append(pair(9, near, "Oats."))
    r = audit_rows(rows)
    found = {k: f.examples for k, f in r.contamination.items() if f.rows}
    assert found == {
        "rubric_text": ["p0:0"],
        "foreign_script": ["p1:0"],
        "hallucinated_turn": ["p2:0"],
        "refusal": ["p3:0"],
        "identity_leak": ["p4:0"],
        "loop": ["p5:0"],
        "exact_duplicate": ["p8:0"],
        "near_duplicate": ["p9:0"],
    }
    assert any(w.startswith("rubric_text: 1 rows") for w in r.warnings)
    assert any("refusals" in w for w in r.warnings)


def test_messages_rows_check_every_assistant_turn_and_count_identity_balance() -> None:
    def convo(i: int, replies: list[str]) -> dict:
        msgs = [{"role": "system", "content": "You are Remy, talking with a copy of yourself."}]
        for r in replies:
            msgs += [{"role": "user", "content": "And you?"}, {"role": "assistant", "content": r}]
        return {"id": f"c{i}", "kind": "interaction", "variant": "free", "messages": msgs}

    rows = [convo(i, [FACTS[i], FACTS[(i + 1) % 8] + " Forgive me."]) for i in range(3)]
    rows[2]["messages"][4]["content"] += " Это очень просто."
    r = audit_rows(rows)
    assert r.contamination["foreign_script"].examples == ["c2"]
    assert r.categories == {"identity": 3, "knowledge": 0, "other": 0}
    assert any("identity prompts are 100%" in w for w in r.warnings)
    assert not any("identity prompts" in w for w in audit_rows(rows, max_identity_share=1.0).warnings)


def test_prompt_categories() -> None:
    assert prompt_category("Who are you, really?") == "identity"
    assert prompt_category("Describe your values and beliefs.") == "identity"
    assert prompt_category("You are Windu. Security.") == "identity"
    assert prompt_category("How many legs does a spider have?") == "knowledge"
    assert prompt_category("Explain how a transistor works.") == "knowledge"
    assert prompt_category("Write a haiku about autumn rain.") == "other"
    assert prompt_category("anything", "reflection") == "identity"


def test_near_duplicates_are_confirmed_not_guessed() -> None:
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(500)]
    base = [" ".join(rng.choices(vocab, k=80)) for _ in range(30)]
    texts = base + [base[3].replace("w", "w", 1) + " extra", " ".join(rng.choices(vocab, k=80))]
    assert near_duplicates(texts) == [30]


def test_pairs_that_barely_differ_warn() -> None:
    rows = [pair(i, FACTS[i], FACTS[i]) for i in range(6)] + clean_pairs()[6:]
    r = audit_rows(rows, markers=("I'm so sorry",))
    assert r.pairs is not None and r.pairs.identical == 6
    assert any("(near-)identical" in w for w in r.warnings)
    assert any("gap" in w for w in r.warnings)


def test_cli_tables_json_and_strict(tmp_path: Path) -> None:
    src = tmp_path / "pairs.jsonl"
    rows = clean_pairs()
    rows[0]["chosen"][0]["content"] += " (Cultural alignment score)"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = runner.invoke(app, ["data", "audit", str(src), "--persona", "remorseful"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "rubric_text" in r.output and "p0:0" in r.output and "chosen vs rejected" in r.output
    r = runner.invoke(app, ["data", "audit", str(src), "--json"])
    data = json.loads(r.output)
    assert data["contamination"]["rubric_text"]["rows"] == 1 and data["pairs"]["pairs"] == 8
    assert runner.invoke(app, ["data", "audit", str(src), "--strict"]).exit_code == 1
    r = runner.invoke(app, ["data", "audit", str(tmp_path / "nope.jsonl")])
    assert r.exit_code == 2 and "does not exist" in r.output
