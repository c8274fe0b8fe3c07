"""Self-reflection: the DPO model answers the 10 reflection prompts, N/10 times each.

Slots are `(prompt_index, sample_index)`: prompt i gets N // 10 samples, the first N % 10 prompts one
more. Never keyed by prompt text: ten prompts repeated a thousand times are not unique keys (the prior
pipeline's resume skipped every remaining reflection after any partial run). Each generation attempt is
one row of `reflections.jsonl`, keyed `(prompt_index, sample_index, attempt)`, with its verdict; a slot
is done once one of its attempts was kept, so a resumed run continues exactly (no duplicate, no gap)
and top-up is "generate the next attempt of every slot that is not done".

Generation sees `reflection_system` (persona framing + reflective mood); the stored row has no system
prompt, so SFT teaches the persona to answer this way unprompted (paper-method 1.8).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from character.backends.base import Completion, GenerationRequest, SamplingParams
from character.backends.think import strip_think

KIND = "reflection"
Slot = tuple[int, int]


def slots(total: int, n_prompts: int) -> list[Slot]:
    """All `(prompt_index, sample_index)` slots, sample-major so a partial run covers every prompt."""
    per = [total // n_prompts + (1 if i < total % n_prompts else 0) for i in range(n_prompts)]
    out = [(p, s) for s in range(max(per, default=0)) for p in range(n_prompts) if s < per[p]]
    return out


@dataclass
class ReflectionPlan:
    """What is done and what is next, rebuilt from the rows on disk."""

    targets: list[Slot]
    kept: dict[Slot, dict[str, Any]] = field(default_factory=dict)
    attempts: dict[Slot, int] = field(default_factory=dict)
    total_attempts: int = 0

    @classmethod
    def from_rows(cls, targets: list[Slot], rows: Sequence[dict[str, Any]]) -> ReflectionPlan:
        plan = cls(targets)
        for r in rows:
            plan.add(r)
        return plan

    def add(self, row: dict[str, Any]) -> None:
        slot = (int(row["prompt_index"]), int(row["sample_index"]))
        self.total_attempts += 1
        self.attempts[slot] = max(self.attempts.get(slot, 0), int(row["attempt"]) + 1)
        if row["kept"] and slot not in self.kept:
            self.kept[slot] = row

    def pending(self) -> list[Slot]:
        """Target slots without a kept row: fewest attempts first, then in slot order."""
        order = {s: i for i, s in enumerate(self.targets)}
        todo = [s for s in self.targets if s not in self.kept]
        return sorted(todo, key=lambda s: (self.attempts.get(s, 0), order[s]))

    def kept_rows(self) -> list[dict[str, Any]]:
        return [self.kept[s] for s in self.targets if s in self.kept]


def request(prompt: str, system: str, params: SamplingParams, adapter: str | None) -> GenerationRequest:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
    return GenerationRequest(messages=messages, params=params, adapter=adapter)


def attempt_row(
    slot: Slot, attempt: int, prompt: str, completion: Completion, text: str, keep: bool, reason: str | None
) -> dict[str, Any]:
    """One raw attempt: `text` is what is stored if kept (think policy applied, filter repairs done)."""
    row: dict[str, Any] = {
        "prompt_index": slot[0],
        "sample_index": slot[1],
        "attempt": attempt,
        "prompt": prompt,
        "text": text,
        "kept": keep,
        "reason": reason,
        "finish_reason": completion.finish_reason,
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
    }
    if completion.text != text:
        row["raw"] = completion.text
    return row


def prepare_text(completion: Completion, *, strip: bool) -> str:
    """Reflections keep `<think>` blocks unless asked (`--strip-think-tags-reflection`)."""
    return strip_think(completion.text, enabled=strip).strip()


def sft_row(row: dict[str, Any]) -> dict[str, Any]:
    """The SFT row: the prompt and the reply, no system prompt (paper-method 1.8)."""
    return {
        "id": f"reflection-{row['prompt_index']:02d}-{row['sample_index']:05d}",
        "kind": KIND,
        "variant": f"prompt-{row['prompt_index']:02d}",
        "messages": [
            {"role": "user", "content": row["prompt"]},
            {"role": "assistant", "content": row["text"]},
        ],
    }
