"""Markdown code fences: where code starts and ends in a reply. Pure string scanning, no regex.

A fence is a line whose first non-blank characters are three backticks or three tildes (indented
fences inside list items count too); the block it opens runs to the next fence line of the same
character, or to the end of the text when it is never closed (a reply cut inside code). Code is not
prose: it repeats lines and symbols on purpose, and a chat log quoted in a code block has "User:" lines
that are not fake turns. So the repetition statistics skip code, the fake-turn search skips markers
inside code, and the backends do not end a reply at a fake-turn marker inside an open block
(`character.backends.stops`).
"""

from __future__ import annotations

from typing import NamedTuple

FENCES = ("```", "~~~")


class Fences(NamedTuple):
    closed: list[tuple[int, int]]
    """(start, end) of every closed block, its fence lines included."""
    open_at: int
    """Where a block that is never closed starts (it runs to the end of the text); -1 when none."""


def _fence_lines(text: str) -> list[tuple[int, int, str]]:
    """(line start, line end, fence) of every fence line, in order. Found with str.find on the fence
    strings (a reply has a few), not by walking every line: a 1 KB reply costs a couple of microseconds."""
    found: dict[int, tuple[int, str]] = {}
    for f in FENCES:
        i = text.find(f)
        while i >= 0:
            start = text.rfind("\n", 0, i) + 1
            end = text.find("\n", i)
            end = len(text) if end < 0 else end
            # A fence line: only blanks before the fence on its line; the first fence on it counts.
            if start not in found and not text[start:i].strip(" \t"):
                found[start] = (end, f)
            i = text.find(f, end)
    return [(start, end, f) for start, (end, f) in sorted(found.items())]


def scan(text: str) -> Fences:
    """Every fenced block of `text`."""
    if "```" not in text and "~~~" not in text:
        return Fences([], -1)
    closed: list[tuple[int, int]] = []
    open_at, open_fence = -1, ""
    for start, end, f in _fence_lines(text):
        if open_at < 0:
            open_at, open_fence = start, f
        elif f == open_fence:
            closed.append((open_at, end))
            open_at = -1
    return Fences(closed, open_at)


def ends_open(text: str) -> bool:
    """True when the text ends inside a code block that was never closed."""
    return scan(text).open_at >= 0


def is_open_at(text: str, pos: int) -> bool:
    """True when a code block opened before `pos` is still open there."""
    return ends_open(text[:pos])


def without_code(text: str, fences: Fences | None = None) -> str:
    """The text with fenced blocks removed (each replaced by one line break); `fences` is `scan(text)`
    when the caller has it."""
    closed, open_at = scan(text) if fences is None else fences
    if not closed and open_at < 0:
        return text
    kept, end = [], 0
    for s, e in closed:
        kept.append(text[end:s])
        end = e
    kept.append(text[end:open_at] if open_at >= 0 else text[end:])
    return "\n".join(kept)
