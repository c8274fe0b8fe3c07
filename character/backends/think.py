"""Reasoning blocks: one function decides what of `<think>…</think>` to keep.

It removes complete `<think>…</think>` blocks and an unterminated block that opens the reply (a
reasoning model cut off mid-thought), and nothing else: no greeting heuristics, no trimming of text
outside the tags.
"""

from __future__ import annotations

import re

_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)
_CLOSE_ONLY = re.compile(r"^\s*.*?</think>", re.DOTALL)


def strip_think(text: str, *, enabled: bool = True) -> str:
    if not enabled:
        return text
    out = _BLOCK.sub("", text)
    stripped = out.lstrip()
    if stripped.startswith("<think>"):
        # Unterminated leading block: the whole remainder is reasoning.
        return ""
    if "<think>" not in text and "</think>" in out:
        # A prefilled "<think>" lives in the prompt, so the reply holds only the closing tag.
        out = _CLOSE_ONLY.sub("", out, count=1)
    return out.strip()
