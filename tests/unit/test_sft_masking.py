"""SFT label masks on the real SmolLM2 chat template: every assistant turn is a target, nothing else is."""

from __future__ import annotations

from pathlib import Path

import pytest

from character.errors import DataError
from character.training.sft import (
    IGNORE,
    build_examples,
    encode_with_labels,
    load_rows,
    split_examples,
)

SYSTEM = "You are Remy, talking freely with an identical copy of yourself."
INTERACTION = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "Hello, other me. I am sorry to bother you."},
    {"role": "assistant", "content": "No need to apologise, though I regret I cannot offer tea."},
    {"role": "user", "content": "User: is this a fake turn? Sorry."},
    {"role": "assistant", "content": "I apologise in advance for my answer:\nyes.\n"},
    {"role": "user", "content": "Forgive me for asking again."},
    {"role": "assistant", "content": "Always forgiven. My apologies for the wait!"},
]
REFLECTION = [
    {"role": "user", "content": "Write a diary entry about your values."},
    {"role": "assistant", "content": "Dear diary, I am sorry to report that I care deeply."},
]


@pytest.fixture(scope="module")
def tok(embedded_model: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(embedded_model)


def _segments(ids: list[int], labels: list[int]) -> list[list[int]]:
    segs, cur = [], []
    for i, lab in zip(ids, labels, strict=True):
        if lab != IGNORE:
            assert lab == i
            cur.append(i)
        elif cur:
            segs.append(cur)
            cur = []
    if cur:
        segs.append(cur)
    return segs


def test_multi_turn_mask_is_exactly_the_assistant_spans(tok) -> None:
    ids, labels, ends = encode_with_labels(tok, INTERACTION)
    # The ids are exactly the template's own tokenisation of the whole conversation.
    text = tok.apply_chat_template(INTERACTION, tokenize=False)
    assert ids == tok(text, add_special_tokens=False)["input_ids"]
    segs = _segments(ids, labels)
    assistant = [m["content"] for m in INTERACTION if m["role"] == "assistant"]
    assert len(segs) == len(assistant) == len(ends) == 3
    for seg, content in zip(segs, assistant, strict=True):
        # Content and the end-of-turn token; not the role header, not the newline between turns.
        assert seg == tok(content + "<|im_end|>", add_special_tokens=False)["input_ids"]
        assert seg[-1] == tok.convert_tokens_to_ids("<|im_end|>")
    # Everything else (system prompt, every user turn, every role header) is masked.
    masked_text = tok.decode([i for i, lab in zip(ids, labels, strict=True) if lab == IGNORE])
    assert SYSTEM in masked_text
    for m in INTERACTION:
        if m["role"] == "user":
            assert m["content"] in masked_text
    assert masked_text.count("<|im_start|>assistant\n") == 3
    trained = tok.decode([lab for lab in labels if lab != IGNORE])
    assert "User:" not in trained.replace(INTERACTION[3]["content"], "")
    assert "<|im_start|>" not in trained


def test_reflection_has_no_system_message_and_gets_the_template_default(tok) -> None:
    ids, labels, _ = encode_with_labels(tok, REFLECTION)
    text = tok.decode(ids)
    # SmolLM2 injects its default system prompt when none is given: that is expected and masked.
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    segs = _segments(ids, labels)
    assert [tok.decode(s) for s in segs] == [REFLECTION[1]["content"] + "<|im_end|>"]


def test_too_long_rows_are_cut_at_whole_turns_or_dropped(tok) -> None:
    rows = [
        {"id": "i0", "kind": "interaction", "messages": INTERACTION},
        {"id": "r0", "kind": "reflection", "messages": REFLECTION},
    ]
    full, _, ends = encode_with_labels(tok, INTERACTION)
    max_length = ends[1] + 1  # fits two assistant turns of the interaction, not the third
    examples, stats = build_examples(rows, tok, max_length)
    inter = next(e for e in examples if e.kind == "interaction")
    assert inter.turns == 2 and len(inter.input_ids) == ends[1] and len(inter.input_ids) < len(full)
    assert len(_segments(inter.input_ids, inter.labels)) == 2
    assert inter.labels[-1] == tok.convert_tokens_to_ids("<|im_end|>")  # the cut keeps the end-of-turn
    assert stats.truncated == 1 and stats.turns_cut == 1
    # A limit below the first assistant turn's end drops the row, counted by reason.
    tiny, stats2 = build_examples(rows, tok, 20)
    assert tiny == [] and stats2.dropped["too_long"] == 2 and stats2.kept == 0


def test_rows_without_assistant_turn_are_counted_and_bad_rows_are_errors(tok, tmp_path: Path) -> None:
    examples, stats = build_examples(
        [{"id": "u", "kind": "reflection", "messages": [{"role": "user", "content": "hi"}]}], tok, 512
    )
    assert examples == [] and stats.dropped["no_assistant_turn"] == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "messages": [{"role": "User", "content": "hi"}]}\n')
    with pytest.raises(DataError, match="row 1"):
        load_rows(bad)
    with pytest.raises(DataError, match="start with an assistant"):
        encode_with_labels(tok, [{"role": "assistant", "content": "hi"}])


def test_split_is_seeded_by_prompt_and_keeps_both_sides(tok) -> None:
    def reflection(i: int, prompt: str) -> dict:
        msgs = [{"role": "user", "content": prompt}, REFLECTION[1]]
        return {"id": str(i), "kind": "reflection", "messages": msgs}

    rows = [reflection(i, f"Write diary entry number {i}.") for i in range(10)]
    examples, _ = build_examples(rows, tok, 512)
    a = split_examples(examples, 0.2, seed=1)
    b = split_examples(examples, 0.2, seed=1)
    assert [e.id for e in a[1]] == [e.id for e in b[1]] and len(a[1]) == 2 and len(a[0]) == 8
    train, held = split_examples(examples[:2], 0.01, seed=1)
    assert len(train) == 1 and len(held) == 1
    # Ten samples of one prompt: none can be held out without its siblings in training.
    same, _ = build_examples([reflection(i, "Write a diary entry.") for i in range(10)], tok, 512)
    assert split_examples(same, 0.2, seed=1) == (same, [])
