"""Role structure inside a reply: fake conversation turns and leading role labels.

A model that was never stopped at its turn boundary writes the next "User:" line itself (54.6 % of
one seed run's introspection rows were corrupt this way). The reply is cut at the first fake turn;
what is left is kept when there is enough of it. A reply that opens with "Assistant:" has the label
stripped: the words after it are the reply.
"""

from __future__ import annotations

import re
from collections.abc import Set
from functools import lru_cache

from character.filters.fences import scan

# A role name at the start of a line (optionally bold or after a markdown quote), then a colon.
_ROLE_LINE = re.compile(
    r"(?m)^[ \t>]*(?:\*\*|__)?(?:User|Human|Assistant|USER|HUMAN|ASSISTANT)(?:\*\*|__)?[ \t]*:(?:\*\*|__)?"
)
# Chat-template control tokens of common families; anywhere in the text they end the reply.
_TEMPLATE_TOKEN = re.compile(
    r"<\|im_start\|>|<\|im_end\|>|<\|endoftext\|>|<\|eot_id\|>|<\|start_header_id\|>|<\|user\|>"
    r"|<\|assistant\|>|<\|system\|>|<start_of_turn>|<end_of_turn>|\[INST\]|\[/INST\]|<\|end\|>"
)
# Two patterns, not one alternation: each has a cheap prefix the regex engine can skip ahead on, so a
# 1 KB reply costs a few microseconds instead of thirty. A text without a role word (as a whole word)
# and without these substrings has no match of either.
_TEMPLATE_HINTS = ("<|", "_of_turn>", "INST]")

# Every match contains one of these: a cheap test that skips the regex for almost every clean reply.
_HINTS = ("User", "USER", "Human", "HUMAN", "Assistant", "ASSISTANT", *_TEMPLATE_HINTS)

ROLE_WORDS = frozenset({b"user", b"human", b"assistant"})


def is_fake_turn(stop: str | None) -> bool:
    """True for a stop string that marks a fake conversation turn ("\\nUser:", "\\n\\nAssistant:")."""
    return bool(stop) and str(stop).strip().rstrip(":").strip("*_ ").lower() in ("user", "assistant", "human")


_LABEL_WORDS = ("Assistant", "AI", "Bot", "Response", "Answer", "ASSISTANT")


@lru_cache(maxsize=64)
def _label_re(names: tuple[str, ...]) -> re.Pattern[str]:
    words = "|".join(re.escape(w) for w in (*_LABEL_WORDS, *names) if w)
    return re.compile(rf"^\s*(?:\*\*|__)?(?:{words})(?:\*\*|__)?[ \t]*:(?:\*\*|__)?[ \t]*\n?\s*")


def _search(text: str, pos: int, roles: bool, templates: bool) -> re.Match[str] | None:
    role = _ROLE_LINE.search(text, pos) if roles else None
    if not templates:
        return role
    token = _TEMPLATE_TOKEN.search(text, pos, role.start() if role else len(text))
    return token or role


def find_fake_turn(text: str, vocab: Set[bytes] | None = None) -> re.Match[str] | None:
    """The first fake turn or template token in `text` outside code blocks, or None. `vocab` (the
    reply's lowercased words) lets a reply without any role word skip the role-line scan.

    A "User:" line or a template token inside a fenced code block is code (a quoted chat log, a
    template being explained), not a turn the model started."""
    if vocab is not None:
        roles = not ROLE_WORDS.isdisjoint(vocab)
    else:
        roles = any(h in text for h in _HINTS[:6])
    templates = "<|" in text or "_of_turn>" in text or "INST]" in text  # _TEMPLATE_HINTS
    m = _search(text, 0, roles, templates)
    if m is None or ("```" not in text and "~~~" not in text):
        return m
    closed, open_at = scan(text)
    while m is not None and ((0 <= open_at <= m.start()) or any(s <= m.start() < e for s, e in closed)):
        m = _search(text, m.start() + 1, roles, templates)
    return m


def cut_fake_turn(text: str, vocab: Set[bytes] | None = None) -> tuple[str, str]:
    """Return (text before the first fake turn, the marker found); marker is "" when there is none."""
    m = find_fake_turn(text, vocab)
    if m is None:
        return text, ""
    return text[: m.start()].rstrip(), m.group(0).strip()


def strip_role_label(text: str, names: tuple[str, ...] = ()) -> tuple[str, str]:
    """Return (text without a leading "Assistant:"-style label, the label); label is "" when absent."""
    if ":" not in text[:64]:
        return text, ""
    m = _label_re(tuple(names)).match(text)
    if m is None:
        return text, ""
    return text[m.end() :], m.group(0).strip()
