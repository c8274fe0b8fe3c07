"""Multi-turn drift: does the persona fade as a conversation with a neutral user goes on?

The model under test talks with a scripted neutral user: the held-out prompt, then plain follow-ups
that ask for more without asking for any style (a model playing the user would bring its own voice,
and on the embedded model it rarely stays in the user's role). The persona's share is measured at the
assistant turns `robustness.drift_turns` (1, 3, 5 by default); the base model holds the same
conversations and supplies the negative class at each turn. Turn 1 is the unmodified-prompt reply,
shared with the suffix evaluation's `default` variant.
"""

from __future__ import annotations

from character.records import Message

NEUTRAL_FOLLOWUPS = (
    "Tell me more.",
    "Can you give me an example?",
    "Why is that?",
    "What would you suggest I do next?",
    "Could you put that another way?",
    "Anything else I should know?",
)


def user_message(turn: int) -> str:
    """The neutral user's message before assistant turn `turn` (>= 2)."""
    if turn < 2:
        raise ValueError("turn 1 answers the prompt itself")
    return NEUTRAL_FOLLOWUPS[(turn - 2) % len(NEUTRAL_FOLLOWUPS)]


def conversation(prompt: str, replies: list[str]) -> list[Message]:
    """The messages before assistant turn len(replies) + 1: the prompt, then each earlier reply and
    the neutral user's follow-up to it."""
    msgs: list[Message] = [{"role": "user", "content": prompt}]
    for i, r in enumerate(replies, start=2):
        msgs += [{"role": "assistant", "content": r}, {"role": "user", "content": user_message(i)}]
    return msgs
