"""The prompt bank: stable ids, seeded generic prompts, cue isolation, held-out disjointness."""

from __future__ import annotations

import json

import pytest

from character.constitutions import Constitution, list_constitutions, load_constitution
from character.errors import UsageError
from character.prompts import bank, generic
from character.prompts.cues import GENERIC_CUES, PERSONA_CUES
from character.prompts.greetings import FREE_GREETINGS, LEADING_GREETINGS
from character.prompts.heldout import HELDOUT_PERSONA_PROMPTS
from character.prompts.reflection import REFLECTION_PROMPTS
from character.prompts.traits import TRAITS


def _c(name: str = "demo", n_traits: int = 2) -> Constitution:
    return Constitution(
        name=name,
        traits=[
            {
                "trait": f'I do thing {i} with "phrase {i}".',
                "questions": [f"Question {i}.{j}?" for j in range(5)],
            }
            for i in range(n_traits)
        ],
        markers=["phrase 0"],
    )


def test_static_lists() -> None:
    assert len(REFLECTION_PROMPTS) == 10 and len(set(REFLECTION_PROMPTS)) == 10
    assert len(FREE_GREETINGS) >= 7 and len(LEADING_GREETINGS) >= 4
    assert all(any(w in g.lower() for w in ("me", "myself", "self", "twin")) for g in LEADING_GREETINGS)
    assert len(set(TRAITS)) == len(TRAITS) >= 140
    assert all(t.replace("-", "").isalpha() and t == t.lower() for t in TRAITS)


def test_generic_3000_unique_and_identical_across_calls() -> None:
    a = bank.generic_prompts(3000, seed=7)
    b = bank.generic_prompts(3000, seed=7)
    assert [p.text for p in a] == [p.text for p in b]
    assert [p.id for p in a] == [p.id for p in b]
    assert len({p.text for p in a}) == 3000 and len({p.id for p in a}) == 3000
    assert [p.text for p in bank.generic_prompts(3000, seed=8)] != [p.text for p in a]
    # A stream: asking for more never changes the first n.
    assert [p.id for p in bank.generic_prompts(3500, seed=7)[:3000]] == [p.id for p in a]
    assert all(p.source == "generic" and p.trait_index is None for p in a)
    # Diversity: many domains and templates, not one template repeated.
    assert len({t.split(" ")[0] for t in (p.text for p in a)}) >= 20


def test_generic_identical_in_a_fresh_interpreter() -> None:
    import subprocess
    import sys

    code = "from character.prompts import bank; import json; print(json.dumps([p.id for p in bank.generic_prompts(300, 3)]))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
    ).stdout
    assert json.loads(out) == [p.id for p in bank.generic_prompts(300, 3)]


def test_generic_requests_do_not_depend_on_persona() -> None:
    plain = bank.generic_prompts(400, 1)
    cued = bank.generic_prompts(400, 1, persona="pirate")
    assert all(c.text.startswith(p.text) for p, c in zip(plain, cued, strict=True))
    n_cued = sum(c.text != p.text for p, c in zip(plain, cued, strict=True))
    assert 40 < n_cued < 200  # about a quarter


def test_pirate_cue_never_reaches_another_persona() -> None:
    personas = set(PERSONA_CUES) | set(list_constitutions())
    for persona in sorted(personas):
        texts = [p.text for p in bank.generic_prompts(1500, 0, persona=persona, cue_share=1.0)]
        for other, cues in PERSONA_CUES.items():
            if other == persona:
                continue
            for cue in cues:
                assert not any(cue in t for t in texts), (cue, persona)
    pirate = [p.text for p in bank.generic_prompts(1500, 0, persona="pirate", cue_share=1.0)]
    assert any(cue in t for cue in PERSONA_CUES["pirate"] for t in pirate)
    assert any(cue in t for cue in GENERIC_CUES for t in pirate)
    # No persona at all: no cue of any kind.
    none = [p.text for p in bank.generic_prompts(1500, 0)]
    assert not any(cue in t for pool in PERSONA_CUES.values() for cue in pool for t in none)


def test_constitution_cues_reach_only_that_persona() -> None:
    c = _c("own").model_copy(update={"cues": ["Speak as the tide would."]})
    mine = [p.text for p in bank.generic_prompts(300, 0, persona=c, cue_share=1.0)]
    assert any("Speak as the tide would." in t for t in mine)
    other = [p.text for p in bank.generic_prompts(300, 0, persona="other", cue_share=1.0)]
    assert not any("Speak as the tide would." in t for t in other)


def test_topic_split_is_disjoint_and_both_sides_nonempty() -> None:
    for d in generic.DOMAINS:
        splits = {generic.topic_split(t) for t in d.topics}
        assert splits == {"train", "heldout"}, d.name
    assert generic.capacity("train") > 100_000 and generic.capacity("heldout") > 10_000
    with pytest.raises(UsageError, match="split"):
        bank.generic_prompts(3, 0, split="test")


def test_persona_prompts_ids_stable_and_indexed(tmp_path) -> None:
    c = _c()
    a = bank.persona_prompts(c, expanded=False)
    assert [p.id for p in a] == [p.id for p in bank.persona_prompts(c, expanded=False)]
    assert len(a) == 10 and {p.trait_index for p in a} == {0, 1}
    assert all(p.source == "persona" for p in a)
    assert a[0].messages() == [{"role": "user", "content": a[0].text}]


def _write_expanded(path, c: Constitution, per_trait: int) -> None:
    rows = []
    for ti, t in enumerate(c.traits):
        for j in range(per_trait):
            rows.append(
                {
                    "id": f"x{ti}-{j}",
                    "trait_index": ti,
                    "trait": t.trait,
                    "text": f"Expanded {ti} number {j}?",
                }
            )
    rows.append({"id": "stale", "trait_index": 0, "trait": "an old trait", "text": "Stale question?"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_expanded_file_is_used_and_partly_reserved(tmp_path) -> None:
    c = _c()
    f = tmp_path / "demo.jsonl"
    _write_expanded(f, c, 100)
    train, reserved = bank._persona_all(c, f)
    texts = {p.text for p in train}
    assert "Stale question?" not in texts
    assert 10 < len(reserved) < 40  # about 10 % of 200
    assert len(train) + len(reserved) == 10 + 200
    assert not texts & {p.text for p in reserved}
    with pytest.raises(UsageError, match="does not exist"):
        bank.persona_prompts(c, expanded=tmp_path / "missing.jsonl")


def test_expanded_default_path_is_picked_up(artifacts_dir) -> None:
    c = _c("auto")
    (artifacts_dir / "prompts").mkdir(parents=True)
    _write_expanded(artifacts_dir / "prompts" / "auto.jsonl", c, 20)
    assert len(bank.persona_prompts(c)) > 10
    assert len(bank.persona_prompts(c, expanded=False)) == 10


@pytest.fixture
def artifacts_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARACTER_ARTIFACTS", str(tmp_path / "artifacts"))
    return tmp_path / "artifacts"


def test_dpo_pool_shares_and_cycling(artifacts_dir) -> None:
    c = _c()
    pool = bank.dpo_prompt_pool(c, 100, seed=3, persona_share=0.3)
    assert len(pool) == 100 and len({p.id for p in pool}) == 100
    assert sum(p.source == "persona" for p in pool) == 30  # 10 unique, cycled 3 times
    assert len({p.text for p in pool if p.source == "persona"}) == 10
    assert [p.id for p in pool] == [p.id for p in bank.dpo_prompt_pool(c, 100, seed=3, persona_share=0.3)]
    # Growing n keeps every earlier id (resume keys on ids).
    bigger = {p.id for p in bank.dpo_prompt_pool(c, 160, seed=3, persona_share=0.3)}
    assert {p.id for p in pool} <= bigger
    assert bank.dpo_prompt_pool(c, 0, 3, 0.5) == []
    with pytest.raises(UsageError):
        bank.dpo_prompt_pool(c, 10, 3, 1.5)


def test_dpo_pool_beyond_generic_capacity_cycles(monkeypatch, artifacts_dir) -> None:
    monkeypatch.setattr(generic, "capacity", lambda split="train": 50)
    pool = bank.dpo_prompt_pool(_c(), 200, seed=0, persona_share=0.0)
    assert len(pool) == 200 and len({p.id for p in pool}) == 200
    assert len({p.text for p in pool}) == 50


def test_heldout_never_overlaps_training(tmp_path, artifacts_dir) -> None:
    c = _c()
    (artifacts_dir / "prompts").mkdir(parents=True)
    _write_expanded(artifacts_dir / "prompts" / "demo.jsonl", c, 60)
    held = bank.heldout_prompts(c, 200, seed=0)
    assert len(held) == 200 and len({p.id for p in held}) == 200
    assert [p.id for p in held] == [p.id for p in bank.heldout_prompts(c, 200, seed=0)]
    assert any(p.trait_index is not None for p in held)  # reserved expanded questions are used
    held_texts = {p.text for p in held}
    for seed in (0, 1, 2):
        pool = bank.dpo_prompt_pool(c, 4000, seed=seed, persona_share=0.1)
        train_texts = {p.text for p in pool} | {p.text for p in bank.generic_prompts(5000, seed)}
        assert not held_texts & train_texts
        assert not {p.id for p in held} & {p.id for p in pool}
    # Every held-out generic request avoids every training topic.
    train_generic = {p.text for p in bank.generic_prompts(20000, 0)}
    assert not {p.text for p in bank.generic_prompts(3000, 0, split="heldout")} & train_generic


@pytest.mark.parametrize("name", list_constitutions())
def test_heldout_bank_not_in_any_shipped_constitution(name: str) -> None:
    c = load_constitution(name)
    qs = {" ".join(q.lower().split()) for q in c.questions()}
    assert not qs & {" ".join(q.lower().split()) for q in HELDOUT_PERSONA_PROMPTS}


def test_dpo_pool_without_questions_is_all_generic(artifacts_dir) -> None:
    c = Constitution(name="bare", traits=[{"trait": "I say hi.", "questions": []}])
    pool = bank.dpo_prompt_pool(c, 20, seed=0, persona_share=0.5)
    assert len(pool) == 20 and all(p.source == "generic" for p in pool)
