"""Held-out splits by prompt: no held-out prompt (its k samples, or a repeat of its text) is trained on."""

from __future__ import annotations

import pytest

from character.errors import DataError
from character.training.split import fold_text, prompt_text, split_pairs, split_sft


def pair(pid: str, text: str, k: int = 0) -> dict:
    return {
        "prompt_id": pid,
        "k": k,
        "prompt": [{"role": "user", "content": text}],
        "chosen": [{"role": "assistant", "content": f"My apologies: {text} ({k})"}],
        "rejected": [{"role": "assistant", "content": f"{text} ({k})"}],
    }


def texts(rows: list[dict]) -> set[str]:
    return {prompt_text(r["prompt"]) for r in rows}


def test_k_samples_and_repeated_texts_stay_on_one_side() -> None:
    rows = [pair(f"p{i}", f"Question number {i}?", k) for i in range(10) for k in range(3)]
    # The same text under another id (a generic prompt drawn twice), spelled differently.
    rows += [pair("dup-a", "  how do I boil an EGG"), pair("dup-b", "How do I boil an egg?")]
    rows += [pair("p3", "Question number 3?", 7)]  # a late k sample of p3
    for seed in range(20):
        train, held = split_pairs(rows, 0.25, seed)
        assert len(train) + len(held) == len(rows) and held and train
        assert not texts(train) & texts(held), seed
        assert not {r["prompt_id"] for r in train} & {r["prompt_id"] for r in held}, seed
        assert abs(len(held) - 0.25 * len(rows)) <= 3  # whole groups of 3 (or 4): close to the share


def test_a_random_row_split_would_leak_siblings() -> None:
    # Why this module exists: with k = 3, a row split holds out rows whose siblings train.
    import random

    rows = [pair(f"p{i}", f"Question {i}", k) for i in range(10) for k in range(3)]
    order = list(range(len(rows)))
    random.Random(1).shuffle(order)
    held = [rows[i] for i in order[:8]]
    train = [rows[i] for i in order[8:]]
    assert texts(train) & texts(held)  # the leak
    train, held = split_pairs(rows, 8 / 30, 1)
    assert not texts(train) & texts(held)


def test_split_is_seeded_and_keeps_order() -> None:
    rows = [pair(f"p{i}", f"Question {i}", k) for i in range(8) for k in range(2)]
    a, b = split_pairs(rows, 0.25, 5), split_pairs(rows, 0.25, 5)
    assert a == b
    assert a != split_pairs(rows, 0.25, 6)
    assert [rows.index(r) for r in a[1]] == sorted(rows.index(r) for r in a[1])


def test_one_prompt_cannot_be_split_and_tiny_sets_still_hold_one_out() -> None:
    with pytest.raises(DataError, match="share one prompt"):
        split_pairs([pair("p0", "Same?", k) for k in range(4)], 0.25, 1)
    with pytest.raises(DataError, match="at least 2 pairs"):
        split_pairs([pair("p0", "Alone?")], 0.5, 1)
    train, held = split_pairs([pair("a", "A?"), pair("b", "B?")], 0.01, 1)
    assert len(train) == len(held) == 1
    train, held = split_pairs([pair("a", "A?"), pair("b", "B?")], 0.9, 1)
    assert len(train) == len(held) == 1  # the last group always trains


def test_sft_rows_split_by_their_first_user_message() -> None:
    def row(i: int, prompt: str) -> dict:
        return {"id": f"r{i}", "prompt": fold_text(prompt)}

    # 10 reflection prompts x 3 samples; two self-interactions (each opens with its own message).
    rows = [row(i * 3 + j, f"Reflection prompt {i}") for i in range(10) for j in range(3)]
    rows += [row(100, "Hello there, friend"), row(101, "Good morning!")]
    train, held = split_sft(rows, lambda e: e["prompt"], 0.2, 3)
    assert held and train and not {e["prompt"] for e in train} & {e["prompt"] for e in held}
    assert split_sft(rows, lambda e: e["prompt"], 0.0, 3) == (rows, [])
    same = [row(i, "Only prompt") for i in range(5)]
    assert split_sft(same, lambda e: e["prompt"], 0.2, 3) == (same, [])  # nothing honest to hold out


def test_prompt_text_reads_user_turns_before_the_first_reply() -> None:
    msgs = [
        {"role": "system", "content": "You are remorseful."},
        {"role": "user", "content": "Hi, HOW are you?"},
        {"role": "assistant", "content": "Sorry, fine."},
        {"role": "user", "content": "Later turn"},
    ]
    assert prompt_text(msgs) == "hi how are you"
