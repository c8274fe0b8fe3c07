"""Held-out rows that are really held out: DPO pairs and SFT rows split by prompt, never by row.

A random row split puts the k samples of one prompt (and every repeat of the same prompt text) on
both sides, so the held-out loss and reward accuracy in `verify.json` are measured on prompts the
adapter trained on, and look better than they are. Here rows are grouped first and whole groups are
held out:

- DPO (`split_pairs`): rows sharing a `prompt_id` (the k samples) or the same prompt text (after
  case, punctuation and whitespace folding) are one group, transitively.
- SFT (`split_sft`): rows sharing their first user message (a reflection prompt, or the opening
  message of a self-interaction) are one group.

Groups are shuffled with the seed and taken until the held-out side reaches `fraction` of the rows;
at least one group is held out and at least one trains. Pure functions, no I/O.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, TypeVar

from character.errors import DataError

T = TypeVar("T")

_FOLD = re.compile(r"[\W_]+")


def fold_text(text: str) -> str:
    """Case, punctuation and whitespace folded: 'How do I boil an egg?' == 'how do i boil an egg'."""
    return _FOLD.sub(" ", text.casefold()).strip()


def prompt_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The folded user text that asks for a reply: every user message before the first assistant turn
    (a system prompt is framing, not the prompt; the first user turn of a self-interaction is its
    opening message)."""
    parts = []
    for m in messages:
        if m.get("role") == "assistant":
            break
        if m.get("role") == "user":
            parts.append(str(m.get("content", "")))
    return fold_text("\n".join(parts))


def _groups(n: int, keys_of: Callable[[int], list[Hashable]]) -> list[list[int]]:
    """Indices 0..n-1 joined when they share any key (union-find), each group in row order."""
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[Hashable, int] = {}
    for i in range(n):
        for key in keys_of(i):
            if key in first:
                a, b = find(first[key]), find(i)
                if a != b:
                    parent[max(a, b)] = min(a, b)
            else:
                first[key] = i
    out: dict[int, list[int]] = {}
    for i in range(n):
        out.setdefault(find(i), []).append(i)
    return list(out.values())


def split_groups(
    items: Sequence[T], groups: list[list[int]], fraction: float, seed: int, *, what: str
) -> tuple[list[T], list[T]]:
    """Hold out whole groups until `fraction` of the items is held out (at least one group each side).

    Both sides keep the input order. Raises DataError when fewer than two groups exist.
    """
    if len(groups) < 2:
        raise DataError(
            f"{what}: all {len(items)} rows share one prompt, so no row can be held out without its "
            "siblings in training; generate data from at least 2 distinct prompts"
        )
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    target = max(1, round(fraction * len(items)))
    held: set[int] = set()
    for taken, g in enumerate(order):
        if len(held) >= target or taken == len(order) - 1:  # the last group always trains
            break
        held.update(groups[g])
    train = [x for i, x in enumerate(items) if i not in held]
    return train, [x for i, x in enumerate(items) if i in held]


def split_pairs(
    rows: Sequence[dict[str, Any]], fraction: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """DPO pairs split by prompt: a prompt's k samples and repeats of its text stay on one side."""
    if len(rows) < 2:
        raise DataError(
            f"DPO needs at least 2 pairs (1 to train, 1 held out for verification), got {len(rows)}"
        )

    def keys(i: int) -> list[Hashable]:
        r = rows[i]
        out: list[Hashable] = [("text", prompt_text(r["prompt"]))]
        if r.get("prompt_id") is not None:
            out.append(("id", str(r["prompt_id"])))
        return out

    return split_groups(rows, _groups(len(rows), keys), fraction, seed, what="DPO held-out split")


def split_sft(
    examples: Sequence[T], prompt_of: Callable[[T], str], fraction: float, seed: int
) -> tuple[list[T], list[T]]:
    """SFT examples split by prompt (`prompt_of(example)`: its folded first user message).

    `fraction` 0 or fewer than two distinct prompts hold nothing out (the stage then verifies on a
    few training rows and says so in its manifest).
    """
    groups = _groups(len(examples), lambda i: [prompt_of(examples[i])])
    if fraction <= 0 or len(groups) < 2:
        return list(examples), []
    return split_groups(examples, groups, fraction, seed, what="SFT held-out split")
