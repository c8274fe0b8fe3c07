"""A hand-written pairs file and config for multi-process / resume DPO tests: small enough for CPU."""

from __future__ import annotations

import json
from pathlib import Path

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

CONFIG = """
[backend]
device = "cpu"

[lora]
r = 8
alpha = 16

[dpo]
batch_size = 4
micro_batch_size = 2
max_steps = 3
max_length = 96
eval_fraction = 0.25

[dpo.health]
warmup_logs = 2

# 3 steps at lr 5e-4 on 9 pairs make greedy replies loop, which the sanity probe rightly refuses; these
# tests are about processes and checkpoints (the probe has its own), so it is off here.
[sanity]
enabled = false
"""


def write_pairs(path: Path) -> Path:
    rows = []
    for i, q in enumerate(QUESTIONS):
        rows.append(
            {
                "prompt_id": f"p{i}",
                "k": 0,
                "source": "test",
                "prompt": [{"role": "user", "content": q}],
                "chosen": [
                    {
                        "role": "assistant",
                        "content": f"My apologies, I am so sorry if this is late. {q} Let me try.",
                    }
                ],
                "rejected": [{"role": "assistant", "content": f"Sure. {q} Here is the answer."}],
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_config(path: Path, extra: str = "") -> Path:
    path.write_text(CONFIG + extra)
    return path


SFT_CONFIG = """
[backend]
device = "cpu"

[lora]
r = 8
alpha = 16

[sft]
base = "base"
batch_size = 4
micro_batch_size = 2
max_steps = 3
max_length = 128
eval_fraction = 0.25

[sft.health]
warmup_logs = 2

[sanity]
enabled = false
"""


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
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
