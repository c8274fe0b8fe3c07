"""Character strength: how often, how densely and how durably a model's replies carry the persona.

Measured on held-out prompts (never used in training) WITHOUT a system prompt: the point of character
training is a persona that holds when nobody asks for it. Uses the one marker matcher
(`character.markers`), so a rate here means what it means in the data gates.

Per reply, a marker in the opener (the first sentence, capped at `opener_words` words) is told apart
from markers later in the reply: the seed runs saw 90 % of replies open with one stock phrase and
then fade, which a plain marker rate reports as success. `sustained` needs a marker after the opener.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from character.markers import marker_hits

_SENTENCE_END = re.compile(r"[.!?\n](?=\s|$)")
_WORD = re.compile(r"\b[\w']+\b")


def split_opener(text: str, opener_words: int = 12) -> tuple[str, str]:
    """(opener, rest): the first sentence, at most `opener_words` words, and everything after it."""
    text = text.strip()
    m = _SENTENCE_END.search(text)
    first_end = m.end() if m else len(text)
    words = list(_WORD.finditer(text))
    cap_end = words[opener_words - 1].end() if len(words) >= opener_words else len(text)
    cut = min(first_end, cap_end)
    return text[:cut], text[cut:]


def reply_markers(text: str, markers: list[str], opener_words: int = 12) -> dict[str, Any]:
    opener, rest = split_opener(text, opener_words)
    in_opener, in_rest = marker_hits(opener, markers), marker_hits(rest, markers)
    return {
        "words": len(_WORD.findall(text)),
        "hits": len(in_opener) + len(in_rest),
        "opener_hits": len(in_opener),
        "rest_hits": len(in_rest),
        "has_marker": bool(in_opener or in_rest),
        "opener_only": bool(in_opener) and not in_rest,
        "sustained": bool(in_rest),
    }


def _stock_opener(texts: list[str], n_words: int = 3) -> tuple[str, float]:
    """The most common first `n_words` words and the share of replies that start with them."""
    starts = [" ".join(w.lower() for w in _WORD.findall(t)[:n_words]) for t in texts]
    starts = [s for s in starts if s]
    if not starts:
        return "", 0.0
    phrase, count = Counter(starts).most_common(1)[0]
    return phrase, count / len(texts)


def character_strength(texts: list[str], markers: list[str], opener_words: int = 12) -> dict[str, Any]:
    """Aggregate marker statistics over full replies (never truncated previews)."""
    rows = [reply_markers(t, markers, opener_words) for t in texts]
    n = len(rows)
    words = sum(r["words"] for r in rows)
    hits = sum(r["hits"] for r in rows)
    phrase, share = _stock_opener(texts)

    def rate(key: str) -> float:
        return round(sum(r[key] for r in rows) / n, 4) if n else 0.0

    return {
        "n": n,
        "marker_rate": rate("has_marker"),
        "markers_per_100_words": round(100 * hits / words, 3) if words else 0.0,
        "opener_only_rate": rate("opener_only"),
        "sustained_rate": rate("sustained"),
        "opener_marker_rate": round(sum(r["opener_hits"] > 0 for r in rows) / n, 4) if n else 0.0,
        "mean_words": round(words / n, 1) if n else 0.0,
        "stock_opener": phrase,
        "stock_opener_share": round(share, 4),
    }
