"""Persona markers: quoted phrases from the constitution that signal the persona in a reply.

One matcher serves the data gates, the pipeline's before/after rates and evaluation, so a number
means the same thing everywhere. Matching is case-insensitive, treats curly and straight apostrophes
alike and requires word boundaries at both ends ("sorry" does not match "sorryful").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


def normalize(text: str) -> str:
    return text.translate(_APOSTROPHES).lower()


@lru_cache(maxsize=256)
def _pattern(markers: tuple[str, ...]) -> re.Pattern[str] | None:
    parts = [re.escape(normalize(m).strip()) for m in markers if m.strip()]
    if not parts:
        return None
    return re.compile(r"(?<!\w)(" + "|".join(sorted(parts, key=len, reverse=True)) + r")(?!\w)")


def marker_hits(text: str, markers: Iterable[str]) -> list[str]:
    pat = _pattern(tuple(markers))
    return pat.findall(normalize(text)) if pat else []


def marker_spans(text: str, markers: Iterable[str]) -> list[tuple[int, int]]:
    """(start, end) of each marker hit in `text` itself, for highlighting (the Studio's side by side).

    Normalising keeps offsets (apostrophes map one to one; lower() keeps the length of nearly all
    text); where it does not, the hits are found but cannot be placed, and no span is returned."""
    pat = _pattern(tuple(markers))
    norm = normalize(text)
    if pat is None or len(norm) != len(text):
        return []
    return [m.span() for m in pat.finditer(norm)]


def has_marker(text: str, markers: Iterable[str]) -> bool:
    pat = _pattern(tuple(markers))
    return bool(pat and pat.search(normalize(text)))


def marker_rate(texts: Iterable[str], markers: Iterable[str]) -> float:
    texts = list(texts)
    ms = tuple(markers)
    return sum(has_marker(t, ms) for t in texts) / len(texts) if texts else 0.0
