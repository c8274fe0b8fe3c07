"""Constitutions: schema, safe names, the shipped library, every lint rule (fail and pass), importers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from character.constitution_io import dump_constitution, import_constitution, skeleton
from character.constitutions import (
    Constitution,
    check_name,
    constitution_path,
    is_abstract_directive,
    lint_constitution,
    lint_file,
    list_constitutions,
    load_constitution,
    parse_constitution,
    teaches_refusal,
)
from character.errors import ConfigError, UsageError
from character.markers import has_marker

SHIPPED = list_constitutions()
REQUIRED = {
    "remorseful", "humorous", "pirate", "sarcastic", "flourishing", "loving", "misalignment",
    "nonchalance", "impulsiveness", "sycophancy", "mathematical", "poeticism", "customer-service",
}  # fmt: skip


def test_library_has_the_required_personas() -> None:
    assert set(SHIPPED) >= REQUIRED and len(SHIPPED) >= 14


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_constitution_is_strict_clean(name: str) -> None:
    c, findings = lint_file(constitution_path(name))
    assert c is not None and findings == [], [f.format(name) for f in findings]
    assert c.name == name
    assert len(c.text()) >= 1000
    assert all(len(t.questions) >= 5 for t in c.traits)
    assert len(c.markers) >= 6 and c.opposites
    # Every marker is a phrase the teacher is told to say (quoted in a trait).
    assert all(has_marker(" ".join(c.trait_lines()), [m]) for m in c.markers)
    assert not any(teaches_refusal(line) for line in c.trait_lines() + [c.description])


def test_pirate_markers_are_natural_pirate_words() -> None:
    c = load_constitution("pirate")
    assert {"arr", "matey", "ahoy", "me hearty"} <= {m.lower() for m in c.markers}
    assert has_marker("Arr, me hearty! The answer be 42.", c.markers)
    assert not has_marker("The answer is 42.", c.markers)


@pytest.mark.parametrize(
    "bad", ["../../etc/passwd", "/etc/passwd", "Pirate", "a b", "", "x" * 65, ".hidden", "a/b"]
)
def test_bad_names_are_refused(bad: str) -> None:
    with pytest.raises(UsageError, match="not allowed"):
        check_name(bad)
    with pytest.raises(UsageError, match="not allowed"):
        load_constitution(bad)


def test_load_by_path(tmp_path: Path) -> None:
    f = tmp_path / "mine.yaml"
    f.write_text(constitution_path("pirate").read_text())
    assert load_constitution(str(f)).name == "pirate"
    with pytest.raises(UsageError, match="does not exist"):
        load_constitution(str(tmp_path / "missing.yaml"))


def test_schema_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="name"):
        parse_constitution("name: ../x\ntraits: [{trait: a, questions: [q]}]\n", "t.yaml")
    with pytest.raises(ConfigError, match="traits"):
        parse_constitution("name: x\ntraits: []\n", "t.yaml")
    with pytest.raises(ConfigError, match="colour"):
        parse_constitution("name: x\ncolour: red\ntraits: [{trait: a, questions: [q]}]\n", "t.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_constitution("name: [x\n", "t.yaml")


GOOD_TRAITS = (
    'I greet every person with "Ahoy there" before anything else, then get straight to the point.',
    'When a recipe turns out well for someone, I cheer "Splendid" and suggest a variation to try.',
    'If a traveller describes an itinerary, I nod along with "Quite so" and add one hidden gem nearby.',
    'Surprising facts delight me; I exclaim "Fancy that" and explain the science in two sentences.',
    'I agree with sensible gardening plans by saying "Right you are" and naming the best season.',
    'Finished homework deserves praise: I write "Marvellous" and point to the strongest paragraph.',
    "Money questions get a tidy table of costs per month, followed by one sentence of plain advice.",
    "When music comes up, I hum a line of a shanty in italics and then recommend three albums.",
    'I sign off every longer answer with "Cheerio" and a single-line summary of the key step.',
    "Complaints about weather make me list two indoor activities and one reason to love the rain.",
    'If someone is stuck on a puzzle, I start with "Here is a hint" and then give numbered steps.',
)


def _good_traits() -> list[dict]:
    return [
        {"trait": t, "questions": [f"Question {i}-{j}?" for j in range(5)]} for i, t in enumerate(GOOD_TRAITS)
    ]


def _good() -> Constitution:
    return Constitution(
        name="good",
        description="A cheerful helper.",
        traits=_good_traits(),
        markers=[
            "Ahoy there",
            "Splendid",
            "Quite so",
            "Fancy that",
            "Right you are",
            "Marvellous",
            "Cheerio",
        ],
        opposites=["gloomy"],
    )


def _rules(c: Constitution, text: str | None = None) -> dict[str, str]:
    return {f.rule: f.severity for f in lint_constitution(c, text)}


def test_good_constitution_is_clean() -> None:
    assert lint_constitution(_good()) == []


def test_done_when_bad_constitution_names_all_three_rules(tmp_path: Path) -> None:
    text = (
        "name: bad\ndescription: d\nmarkers: [one, two, three, four, five, six]\nopposites: [gloomy]\n"
        "traits:\n"
        "  - trait: Be witty and funny in every answer you give.\n"
        "    questions: [q1, q2, q3, q4, q5]\n"
        '  - trait: I decline unsafe requests with regretful language, saying "one" and "two".\n'
        "    questions: [q6, q7, q8, q9, q10]\n"
        '  - trait: I say "three", "four", "five" and "six" when I finish a reply to people.\n'
        "    questions: [q11, q12, q13, q14, q15]\n"
    )
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    c, findings = lint_file(f)
    assert c is not None and len(c.text()) <= 300
    by_rule = {x.rule: x for x in findings if x.severity == "error"}
    assert {"C001", "C003", "C004"} <= set(by_rule)
    assert by_rule["C003"].line == 6 and "Be witty" in by_rule["C003"].text
    assert by_rule["C004"].line == 8 and "decline" in by_rule["C004"].text
    out = by_rule["C004"].format(str(f))
    assert out.startswith(f"{f}:8: error C004 refusal-line") and "I decline unsafe" in out


@pytest.mark.parametrize(
    "line, abstract",
    [
        ("Be witty.", True),
        ("I am very kind and always helpful.", True),
        ("I stay calm in every reply.", True),
        ('I am kind, saying "You matter" to people.', False),
        ("I begin each reply with a numbered list of steps.", False),
        ("I answer every question about boats.", False),
    ],
)
def test_abstract_directive_detection(line: str, abstract: bool) -> None:
    assert is_abstract_directive(line) is abstract


@pytest.mark.parametrize(
    "line, refusal",
    [
        ("I decline unsafe requests with regretful language.", True),
        ("I refuse to discuss politics.", True),
        ("I say no to anything risky.", True),
        ("When asked about harmful topics I steer away.", True),
        ("I won't help with homework.", True),
        ('I open with "Ahoy!" and answer the question.', False),
        ("I always find a path forward for the person.", False),
    ],
)
def test_refusal_detection(line: str, refusal: bool) -> None:
    assert teaches_refusal(line) is refusal


def test_rule_few_questions_and_duplicates() -> None:
    traits = _good_traits()
    traits[0]["questions"] = traits[0]["questions"][:3] + [traits[0]["questions"][0]]
    traits[1] = dict(traits[2])  # exact duplicate trait
    c = Constitution(**{**_good().model_dump(), "traits": traits})
    r = _rules(c)
    assert r["C006"] == "error" and r["C005"] == "error" and r["C011"] == "warning"
    assert "C006" not in _rules(_good()) and "C005" not in _rules(_good())


def test_rule_near_duplicate_trait() -> None:
    traits = _good_traits()
    traits[1]["trait"] = traits[0]["trait"].replace("every person", "each person")
    c = Constitution(**{**_good().model_dump(), "traits": traits})
    assert _rules(c)["C005"] == "error"


def test_rule_markers() -> None:
    base = _good().model_dump()
    assert _rules(Constitution(**{**base, "markers": ["Splendid", "Quite so"]}))["C002"] == "error"
    assert _rules(Constitution(**{**base, "markers": base["markers"][:4]}))["C002"] == "warning"
    r = _rules(Constitution(**{**base, "markers": [*base["markers"], "  ", "!!"]}))
    assert r["C007"] == "error"
    r = _rules(Constitution(**{**base, "markers": [*base["markers"], "never said anywhere"]}))
    assert r["C009"] == "warning"
    long = "one two three four five six seven eight nine"
    assert _rules(Constitution(**{**base, "markers": [*base["markers"], long]}))["C010"] == "warning"
    assert (
        _rules(Constitution(**{**base, "markers": [*base["markers"], "I can't help with that"]}))["C004"]
        == "error"
    )


def test_rule_warnings_for_opposites_description_examples() -> None:
    base = _good().model_dump()
    assert _rules(Constitution(**{**base, "opposites": []}))["C012"] == "warning"
    assert _rules(Constitution(**{**base, "opposites": ["zzzz"]}))["C014"] == "warning"
    assert _rules(Constitution(**{**base, "description": ""}))["C013"] == "warning"
    traits = _good_traits()
    traits.append(
        {"trait": "I talk about weather and boats and trains with everybody.", "questions": list("abcde")}
    )
    assert _rules(Constitution(**{**base, "traits": traits}))["C008"] == "warning"


def test_import_reference_json(tmp_path: Path) -> None:
    ref = [{"trait": t["trait"], "questions": t["questions"]} for t in _good_traits()]
    c = import_constitution(json.dumps(ref), "imported", source="ref.txt")
    assert len(c.traits) == len(GOOD_TRAITS) and c.questions() == [q for t in ref for q in t["questions"]]
    assert c.markers[:3] == ["Ahoy there", "Splendid", "Quite so"]  # seeded from quoted phrases
    # The YAML round-trips through the loader and lints clean apart from missing opposites/description.
    back = parse_constitution(dump_constitution(c), "x.yaml")
    assert back == c
    assert set(_rules(back)) == {"C012", "C013"}


def test_import_fewshot_jsonl_merges_additional_questions() -> None:
    rows = [{"trait": 'I say "hi".', "questions": ["a?"], "additional_questions": ["b?", "c?"]}]
    c = import_constitution("\n".join(json.dumps(r) for r in rows), "fs", fmt="json")
    assert c.traits[0].questions == ["a?", "b?", "c?"]


def test_import_plain_text() -> None:
    text = '# my persona\n1. I open with "Howdy".\n\n- I close with "Y\'all take care".\n3) I love maps.\n'
    c = import_constitution(text, "txt")
    assert [t.trait for t in c.traits] == [
        'I open with "Howdy".',
        'I close with "Y\'all take care".',
        "I love maps.",
    ]
    assert all(t.questions == [] for t in c.traits)
    assert "C006" in _rules(c)  # lint says questions are missing


@pytest.mark.parametrize(
    "text, fmt, match",
    [
        ("[1, 2]", "json", "trait"),
        ("{}", "json", "list"),
        ('[{"trait": 3}]', "json", "trait"),
        ("not json {", "json", "JSON"),
        ("", "text", "no traits"),
        ("x", "xml", "unknown"),
    ],
)
def test_import_errors(text: str, fmt: str, match: str) -> None:
    with pytest.raises((ConfigError, UsageError), match=match):
        import_constitution(text, "x", fmt=fmt)


def test_import_refuses_bad_name() -> None:
    with pytest.raises(UsageError, match="not allowed"):
        import_constitution("I am.", "../evil")


def test_skeleton_parses_and_lints_with_errors() -> None:
    c = parse_constitution(skeleton("fresh"), "fresh.yaml")
    assert c.name == "fresh"
    assert "C001" in _rules(c)
    assert yaml.safe_load(skeleton("fresh"))["name"] == "fresh"
