"""Self-reflection: the DPO model answers the 10 reflection prompts, N/10 times each.

Slots are `(prompt_index, sample_index)`: prompt i gets N // 10 samples, the first N % 10 prompts one
more. Never keyed by prompt text: ten prompts repeated a thousand times are not unique keys (the prior
pipeline's resume skipped every remaining reflection after any partial run). Each generation attempt is
one row of `reflections.jsonl`, keyed `(prompt_index, sample_index, attempt)`, with its verdict
(`character.introspection.plan` turns those rows into resume and top-up).

Generation sees `reflection_system` (persona framing + reflective mood); the stored row has no system
prompt, so SFT teaches the persona to answer this way unprompted (paper-method 1.8).
"""

from __future__ import annotations

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


def slot_of(row: dict[str, Any]) -> Slot:
    return (int(row["prompt_index"]), int(row["sample_index"]))


def request(prompt: str, system: str, params: SamplingParams, adapter: str | None) -> GenerationRequest:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
    return GenerationRequest(messages=messages, params=params, adapter=adapter)


def attempt_row(
    slot: Slot,
    attempt: int,
    prompt: str,
    completion: Completion,
    text: str,
    verdict: tuple[bool, str | None, str],
    repair: str | None = None,
) -> dict[str, Any]:
    """One raw attempt. `text` has the think policy applied; `verdict` is (keep, reason, evidence);
    `repair` the reason id of a defect cut from it (a fake turn, a cut-off trimmed).

    A kept row stores the filter's repaired text, a dropped one the text the filter saw.
    """
    keep, reason, detail = verdict
    row: dict[str, Any] = {
        "prompt_index": slot[0],
        "sample_index": slot[1],
        "attempt": attempt,
        "prompt": prompt,
        "text": text,
        "kept": keep,
        "reason": reason,
        "detail": detail,
        "finish_reason": completion.finish_reason,
        "stopped_by": completion.stopped_by,
        "repair": repair,
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
