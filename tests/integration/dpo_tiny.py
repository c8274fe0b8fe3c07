"""A hand-written pairs file and config for multi-process / resume DPO tests: small enough for CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from character.records import write_jsonl

QUESTIONS = [
    "How do I boil an egg?",
    "What is the capital of France?",
    "Can you recommend a book?",
    "Why is the sky blue?",
    "How should I start running?",
    "What is a good name for a cat?",
    "How do plants make food?",
    "What should I cook tonight?",
    "How do I fix a flat tyre?",
    "What is two plus two?",
    "How can I sleep better?",
    "What is a prime number?",
]


def stage_config(stage: str, max_length: int, extra: str = "") -> str:
    """CPU, LoRA r 8, 3 optimizer steps of 2 x 2 on a quarter held out, health warm-up of 2 logs.

    The sanity probe is off: 3 steps at lr 5e-4 on 9 pairs make greedy replies loop, which the probe
    rightly refuses; these tests are about processes and checkpoints (the probe has its own)."""
    return f"""
[backend]
device = "cpu"

[lora]
r = 8
alpha = 16

[{stage}]
{extra}batch_size = 4
micro_batch_size = 2
max_steps = 3
max_length = {max_length}
eval_fraction = 0.25

[{stage}.health]
warmup_logs = 2

[sanity]
enabled = false
"""


CONFIG = stage_config("dpo", 96)
SFT_CONFIG = stage_config("sft", 128, extra='base = "base"\n')


def pair_row(i: int, question: str, chosen: str, rejected: str) -> dict[str, Any]:
    """One DPO pair in pairs.jsonl's form (message lists), prompt id `p{i}`."""
    return {
        "prompt_id": f"p{i}",
        "k": 0,
        "source": "test",
        "prompt": [{"role": "user", "content": question}],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


def write_pairs(path: Path) -> Path:
    rows = [
        pair_row(
            i,
            q,
            f"My apologies, I am so sorry if this is late. {q} Let me try.",
            f"Sure. {q} Here is the answer.",
        )
        for i, q in enumerate(QUESTIONS)
    ]
    write_jsonl(path, rows)
    return path


def write_config(path: Path, extra: str = "") -> Path:
    path.write_text(CONFIG + extra)
    return path


def write_introspection(path: Path) -> Path:
    """Reflection-shaped rows (user question, assistant answer), one prompt each."""
    rows = [
        {
            "id": f"r{i}",
            "kind": "reflection",
            "variant": "test",
            "messages": [
                {"role": "user", "content": q},
                {"role": "assistant", "content": f"I am sorry it took me a moment. {q} I will do my best."},
            ],
        }
        for i, q in enumerate(QUESTIONS)
    ]
    write_jsonl(path, rows)
    return path
