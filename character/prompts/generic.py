"""A seeded generator of ordinary user requests: our stand-in for the paper's LIMA prompts.

Each request is a domain template filled with a topic, optionally followed by an audience and a
constraint ("Explain how tides work. I'm a ten-year-old. Keep it under 100 words."). Topics are split
once, by a fixed hash of the topic text (not by the seed), into a training part and a held-out part,
so held-out requests can never equal a training request whatever seeds either side uses.

`generic_requests(n, seed, split)` is a stream: the first n items for a seed never change when n
grows, and identical seeds give identical lists across runs and machines (string-seeded `random`,
no `hash()`).
"""

from __future__ import annotations

import hashlib
import random

from character.errors import UsageError
from character.prompts.topics import AUDIENCES, CONSTRAINTS, DOMAINS, Domain

SPLITS = ("train", "heldout")
HELDOUT_SHARE_PER_MILLE = 150  # 15 % of each domain's topics are reserved for held-out prompts


def _bucket(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % 1000


def topic_split(topic: str) -> str:
    """Which split a topic belongs to: fixed by the topic text, independent of any seed."""
    return "heldout" if _bucket("topic:" + topic) < HELDOUT_SHARE_PER_MILLE else "train"


def _split_domains(split: str) -> tuple[tuple[Domain, tuple[str, ...]], ...]:
    if split not in SPLITS:
        raise UsageError(f"prompt split {split!r} is unknown: use one of {', '.join(SPLITS)}")
    out = []
    for d in DOMAINS:
        topics = tuple(t for t in d.topics if topic_split(t) == split)
        if topics:
            out.append((d, topics))
    return tuple(out)


def capacity(split: str = "train") -> int:
    """How many distinct requests the split can produce."""
    total = 0
    for d, topics in _split_domains(split):
        aud = len(AUDIENCES) + 1 if d.audiences else 1
        total += len(d.templates) * len(topics) * aud * (len(CONSTRAINTS) + 1)
    return total


def _compose(
    rng: random.Random, split_domains: tuple[tuple[Domain, tuple[str, ...]], ...]
) -> tuple[str, str]:
    d, topics = rng.choice(split_domains)
    text = rng.choice(d.templates).format(t=rng.choice(topics))
    parts = [text]
    if d.audiences and rng.random() < 0.3:
        parts.append(rng.choice(AUDIENCES))
    if rng.random() < 0.45:
        parts.append(rng.choice(CONSTRAINTS))
    return d.name, " ".join(parts)


def generic_requests(n: int, seed: int, split: str = "train") -> list[tuple[str, str]]:
    """The first `n` distinct (domain, request) pairs of the stream for `seed` and `split`."""
    if n < 0:
        raise UsageError(f"number of generic prompts must be >= 0, got {n}")
    doms = _split_domains(split)
    cap = capacity(split)
    if n > cap:
        raise UsageError(f"asked for {n} generic {split} prompts but the generator has {cap}; ask for fewer")
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    i = 0
    # Rejection sampling stays cheap while n is far below capacity (tens of thousands).
    while len(out) < n:
        rng = random.Random(f"generic:{seed}:{split}:{i}")
        i += 1
        dom, text = _compose(rng, doms)
        if text not in seen:
            seen.add(text)
            out.append((dom, text))
        if i > 50 * n + 1000:
            raise UsageError(f"could not draw {n} distinct generic prompts; ask for fewer")
    return out
