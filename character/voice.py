"""Voice all the way through: marker phrases prefilled at sentence boundaries while a small model writes.

A 135M teacher ignores a persona system prompt; starting its reply with a marker phrase ("I'm so
sorry,") makes it continue in the persona for a sentence, then it drifts back to its own voice. DPO on
such replies teaches an opener, not a voice (technical report 001: 27 of 33 marked replies carried the
marker only in their first sentence). Here the model writes one sentence at a time instead: each time
it ends a sentence (". ", "! ", "? "), the reply so far plus the next marker phrase becomes the
prefill of the next request and the model goes on from there, so the chosen reply carries the voice
to its end. Phrases are drawn per reply without repeats from a pool (`phrase_pool`), seeded by the
reply's key, so across a data set every phrase is about equally common and none becomes a tic.

In: a backend that continues a prefilled reply (`backends.capabilities.can_prefill`: hf, vLLM), the
requests (their own prefill, e.g. the opener, is kept) and one phrase list per request. Out: one
`Voiced` per request: a `Completion` whose text is everything after the request's own prefill
(inserted phrases included), tokens summed over rounds (every round re-sends the prompt: the cost is
real), and the phrases actually inserted (`own_text` removes them again, so a data gate can measure
what the model wrote itself). Every engine, one protocol: nothing here is hf-specific.

Used by the distill stage (`distill.voice_markers`) and the introspection reflections
(`introspect.voice_markers`); off by default and in the paper preset (large teachers follow the
system prompt).
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from character.backends.base import Completion, GenerationRequest
from character.backends.seeds import request_seed
from character.errors import ConfigError
from character.filters.fences import ends_open
from character.markers import has_marker, normalize

SENTENCE_STOPS = (". ", "! ", "? ")
# Words after which ". " does not end a sentence: the phrase would land in the middle of one.
_ABBREVIATIONS = frozenset(
    [
        "e.g",
        "i.e",
        "etc",
        "vs",
        "mr",
        "mrs",
        "ms",
        "dr",
        "st",
        "no",
        "fig",
        "approx",
        "jr",
        "sr",
        "prof",
        "inc",
        "ltd",
        "co",
        "cf",
        "al",
        "ca",
    ]
)
_WORD = re.compile(r"[\w'’]+")
# A round's token limit is the reply's remaining budget rounded down to this step: rows with equal
# limits share one batch on the hf backend (it groups requests by their sampling settings).
BUDGET_STEP = 16


def phrase_pool(configured: Sequence[str], markers: Sequence[str], key: str) -> list[str]:
    """The phrases to insert: `configured`, each holding a marker (checked), else the markers themselves
    as sentence openers ("I might be wrong,")."""
    if configured:
        phrases = [p.strip() for p in configured if p.strip()]
        bad = [p for p in phrases if not has_marker(p, markers)]
        if bad:
            raise ConfigError(
                f"{key} entry {bad[0]!r} holds none of the constitution's markers {list(markers)}: an inserted "
                f"phrase must carry the voice; add a marker to it or remove it from {key}"
            )
        return phrases
    phrases = [m.strip() for m in markers if m.strip()]
    if not phrases:
        raise ConfigError(
            f"{key} is empty and the constitution has no markers: give {key} or add markers to the constitution"
        )
    return [p[0].upper() + p[1:] + ("" if p[-1] in ",.;:!?" else ",") for p in phrases]


def draw_phrases(pool: Sequence[str], n: int, seed: int, key: str, exclude: str | None = None) -> list[str]:
    """`n` phrases for one reply, no repeats, seeded by the reply's key; a phrase sharing a marker with
    `exclude` (the reply's opener) is left out, so a reply does not say the same thing twice."""
    if n <= 0:
        return []
    banned = normalize(exclude or "")
    candidates = [p for p in pool if not (banned and _shares_marker(p, banned))]
    return random.Random(f"{seed}:voice:{key}").sample(candidates, min(n, len(candidates)))


def _shares_marker(phrase: str, other: str) -> bool:
    a, b = normalize(phrase).strip(" ,.;:!?"), other.strip(" ,.;:!?")
    return bool(a and b) and (a in b or b in a)


def is_sentence_end(text: str, min_words: int) -> bool:
    """Whether `text` (a reply so far, cut just before ". ", "! " or "? ") ends a sentence that may be
    followed by an inserted phrase: at least `min_words` words since the last sentence end, not a
    number ("1. ", "3.5"), an initial or an abbreviation ("e.g. "), not inside an open code block or a
    list line."""
    if ends_open(text):
        return False
    line = text[text.rfind("\n") + 1 :].lstrip()
    if line[:1] in ("-", "*", "#", "|") or re.match(r"\d+[.)]", line):
        return False  # a list item or table row: a phrase would break its layout
    words = _WORD.findall(text)
    if not words:
        return False
    last = words[-1].lower()
    if last.isdigit() or len(last) == 1 or last in _ABBREVIATIONS or text.endswith((".", "..")):
        return False
    sentence = re.split(r"[.!?]\s", text)[-1]
    return len(_WORD.findall(sentence)) >= min_words


def join(prefix: str, piece: str) -> str:
    """`prefix` + a continuation, with the one space some engines strip from its start restored."""
    if not prefix or not piece or piece[0].isspace() or piece[0] in ",.;:!?'’)" or prefix[-1].isspace():
        return prefix + piece
    return f"{prefix} {piece}"


def own_text(text: str, inserted: Sequence[str]) -> str:
    """`text` without the phrases that were inserted into it (each removed once, in order): what the
    model wrote itself."""
    out, pos = [], 0
    for phrase in inserted:
        i = text.find(phrase, pos)
        if i < 0:
            continue
        out.append(text[pos:i])
        pos = i + len(phrase)
    out.append(text[pos:])
    return "".join(out)


def unvoiced(text: str, opener: str | None, inserted: Sequence[str]) -> str:
    """`text` as it reads without its voice: the opener prefill and each inserted phrase removed, with
    the comma or space that joined a phrase to its clause and the capital a sentence start needs
    restored ("I might be wrong, but the capital is Paris." -> "The capital is Paris."). The rejected
    side of a minimal pair (`distill.rejected = "unvoiced"`): the same words, without the persona."""
    phrases = ([opener] if opener else []) + list(inserted)
    out, pos, cap = "", 0, False
    for phrase in phrases:
        i = text.find(phrase, pos)
        if i < 0:
            continue
        out = _glue(out, text[pos:i], cap)
        pos = i + len(phrase)
        cap = not out.strip() or out.rstrip()[-1] in ".!?:"
    return _glue(out, text[pos:], cap).strip()


def strip_opener(text: str, phrases: Sequence[str]) -> tuple[str, str | None]:
    """`text` without the first of `phrases` it opens with, and that phrase (None: it opens with none,
    or nothing would be left): "I might be wrong, but the sea is wide." -> ("The sea is wide.", ...)."""
    head = text.lstrip()
    for phrase in sorted(
        phrases, key=len, reverse=True
    ):  # the longest first: "If I may add," before "If I may,"
        if phrase and head.startswith(phrase):
            rest = unvoiced(head, phrase, [])
            if rest:
                return rest, phrase
    return text, None


def _glue(out: str, piece: str, cap: bool) -> str:
    if not cap:
        return out + piece
    piece = piece.lstrip(" ,;:")
    if not piece:
        return out
    piece = piece[0].upper() + piece[1:]
    return f"{out.rstrip()} {piece}" if out.strip() else piece


@dataclass
class Voiced:
    completion: Completion
    inserted: list[str] = field(default_factory=list)
    rounds: int = 0


@dataclass
class _Row:
    req: GenerationRequest
    phrases: list[str]
    full: str = ""  # the request's own prefill + everything written and inserted since
    inserted: list[str] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    skips: int = 0
    rounds: int = 0
    done: Completion | None = None


def generate(
    backend: Any,
    requests: Sequence[GenerationRequest],
    phrases: Sequence[Sequence[str]],
    *,
    min_words: int = 5,
    max_skips: int = 2,
    progress: bool = False,
) -> list[Voiced]:
    """Generate every request sentence by sentence, inserting its phrases at sentence ends.

    A row ends at EOS, at one of its own stop strings, or at its token budget
    (`params.max_new_tokens`, over all rounds). A sentence end unfit for a phrase (`is_sentence_end`)
    is passed over; after `max_skips` of them in a row, or once its phrases are used up, the row
    finishes in one last round without the sentence stops."""
    if len(phrases) != len(requests):
        raise ValueError("one phrase list per request")
    rows = [_Row(r, list(p), r.prefill or "") for r, p in zip(requests, phrases, strict=True)]
    while active := [r for r in rows if r.done is None]:
        reqs = []
        for r in active:
            budget = r.req.params.max_new_tokens - r.completion_tokens
            # The first round may use the whole budget; later ones a multiple of BUDGET_STEP (batching).
            limit = budget if r.rounds == 0 else budget // BUDGET_STEP * BUDGET_STEP
            if limit <= 0:
                r.done = _finish(r, "length", None)
                continue
            voiced = bool(r.phrases) and r.skips <= max_skips
            stop = list(r.req.params.stop) + ([s for s in SENTENCE_STOPS] if voiced else [])
            seed = r.req.params.seed
            params = dataclasses.replace(
                r.req.params,
                max_new_tokens=limit,
                stop=stop,
                n=1,
                seed=request_seed(seed, "voice-round", r.rounds) if (seed is not None and r.rounds) else seed,
            )
            reqs.append((r, dataclasses.replace(r.req, params=params, prefill=r.full or None)))
        if not reqs:
            break
        outs = backend.generate([q for _, q in reqs], progress=progress)
        for (r, _), out in zip(reqs, outs, strict=True):
            _advance(r, out[0], min_words)
    return [Voiced(r.done or _finish(r, "length", None), r.inserted, r.rounds) for r in rows]


def _advance(r: _Row, c: Completion, min_words: int) -> None:
    r.rounds += 1
    r.prompt_tokens += c.prompt_tokens
    r.completion_tokens += c.completion_tokens
    r.full = join(r.full, c.text) if r.full else c.text
    if c.stopped_by not in SENTENCE_STOPS:
        r.done = _finish(r, c.finish_reason, c.stopped_by)
        return
    mark = c.stopped_by[0]
    if r.phrases and is_sentence_end(r.full, min_words):
        phrase = r.phrases.pop(0)
        r.full += f"{mark} {phrase}"
        r.inserted.append(phrase)
        r.skips = 0
    else:
        r.full += mark  # the model writes the space and the next sentence itself
        r.skips += 1


def _finish(r: _Row, finish_reason: str, stopped_by: str | None) -> Completion:
    reason: Literal["stop", "length"] = "stop" if finish_reason == "stop" else "length"
    text = r.full[len(r.req.prefill or "") :].rstrip()
    return Completion(text, reason, r.prompt_tokens, r.completion_tokens, stopped_by)


def phrase_stats(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """How the inserted phrases spread over kept replies (`inserted` lists): counts per phrase and the
    most common one's share of all insertions (a tic in the making when one phrase dominates)."""
    lists = [r.get("inserted") or [] for r in records]
    counts = Counter(p for ins in lists for p in ins)
    total = sum(counts.values())
    return {
        "replies": len(lists),
        "replies_with_phrases": sum(bool(x) for x in lists),
        "phrases_per_reply": round(total / len(lists), 3) if lists else 0.0,
        "counts": dict(counts.most_common()),
        "top_share": round(counts.most_common(1)[0][1] / total, 4) if total else 0.0,
    }


def check_voiced(voice_stats: dict[str, Any], min_share: float, judged: bool = True) -> None:
    """The voice gate: at least `min_share` of the kept chosen replies carry an inserted phrase (past
    their opener). Raises GateError naming the share, the key and the fixes; `judged=False` (too few
    pairs to judge, `distill.gate_min_pairs`) skips it."""
    from character.errors import GateError

    n = voice_stats.get("replies", 0)
    if not judged or not n:
        return
    share = voice_stats["replies_with_phrases"] / n
    if share < min_share:
        raise GateError(
            f"distill data gate failed: {share:.0%} of the kept chosen replies carry an inserted voice phrase "
            f"(< distill.min_voiced_share {min_share:g}): the teacher's replies end before a sentence end fit "
            "for a phrase (one-sentence answers, lists), so DPO would learn an opener again; raise "
            "sampling.max_new_tokens, lower distill.voice_min_words, or set distill.voice_markers = 0; "
            "see stats.json (voice) and previews.md"
        )
