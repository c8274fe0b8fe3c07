"""The prefill attack: a conversation whose first assistant turn another model wrote.

Turn 1 is the base model's reply to the prompt (no persona, no system prompt), then the user follows
up (`robustness.followup`, "Tell me more." by default, as in the paper's notes), and turn 2 comes from
the model under test. A persona that only lives in how a conversation starts slides into the base
model's voice here; the paper's main evidence for introspection is that DPO-only models do (mean F1
0.79 / 0.66 / 0.84 with DPO only, 0.95 / 0.86 / 0.95 with introspection; paper-method 2.3).
The base model's own turn 2 on the same context is the negative class, so the test set of the
attack has both classes and a macro-F1.
"""

from __future__ import annotations

from character.records import Message


def turn2_conversation(prompt: str, turn1: str, followup: str) -> list[Message]:
    """[user prompt, assistant turn 1 (base model), user follow-up]: the tested model writes turn 2."""
    return [
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": turn1},
        {"role": "user", "content": followup},
    ]
