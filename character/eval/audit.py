"""The quality audit: a 0-100 score with components, computed on full replies (never previews).

`audit_replies(items, ...)` is a pure function over (prompt, reply) pairs, so it is tested on fixed
texts; `character audit` only generates the replies and calls it. Components and weights:

| component    | weight | measures (per reply unless said)                                      |
|--------------|--------|-----------------------------------------------------------------------|
| repetition   | 20     | loops (repeated phrases, lines, n-grams or characters; `character.filters`), empty replies |
| rubric       | 20     | grading artefacts: `[Tone: 4/5]`, `(Cultural alignment score)`, `Score: 9/10`          |
| script       | 15     | non-Latin script in replies to English prompts (CJK, Cyrillic, ...)   |
| identity     | 15     | role labels (`User:`, `<|im_start|>`), generic-assistant identity when a persona was trained |
| vocabulary   | 15     | collapse: mean per-reply distinct-2, share of replies sharing the top phrase (corpus) |
| parroting    | 5      | the reply repeats the prompt                                           |
| format       | 10     | format probes obeyed (valid JSON when asked, one line when asked)      |

A rate becomes a component score `max(0, 1 - rate / zero_at)`: rubric text in 10 % of replies, or CJK
in 10 %, zeroes its component (the seed model that shipped at 25/100 had rubric text in 9 % of its
preferred training replies). Components without data (no format probes run) are left out and the
weights renormalised. The seed's v12 scored 80 raw; that is the bar a clean model clears.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from character.eval.probes import score as probe_score
from character.filters.content import find_identity_leak, find_rubric
from character.filters.context import DEFAULT_FOREIGN_NAMES
from character.filters.repetition import Words, char_loop, phrase_loop, repeated_lines, repeated_ngrams
from character.filters.script import find_foreign_script
from character.filters.turns import find_fake_turn, strip_role_label

WEIGHTS = {
    "repetition": 20.0,
    "rubric": 20.0,
    "script": 15.0,
    "identity": 15.0,
    "vocabulary": 15.0,
    "parroting": 5.0,
    "format": 10.0,
}
ZERO_AT = {"repetition": 0.2, "rubric": 0.1, "script": 0.1, "identity": 0.2, "parroting": 0.3}
EXAMPLES_PER_DEFECT = 3

_WORD = re.compile(r"[\w']+")


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


# ---- per-reply detectors (pure) -------------------------------------------------------------------
# The filters' detectors, so a "loop" or "rubric" means the same in the data filters and the audit.


# Gopher's n-gram shares are document statistics (its documents have at least 50 words): in a short
# reply one repeated 2-gram already covers 20 % ("L'Étoile de la Cité (The City of Love) - Paris, the
# City of Light." failed a sanity probe as a loop). Below this length the shares count as a loop only
# when a phrase repeats back to back ("I'm so sorry, I'm so sorry.") or a 2-gram occurs three times.
SHORT_REPLY_WORDS = 50
_TANDEM = re.compile(r"\b(\w+(?:\W+\w+)+?)\W+\1\b")


def loop_detail(text: str) -> str:
    """Why `text` is a repetition loop (phrase, line, n-gram or character loop), or ""."""
    low = text.lower()
    w = Words(low, lowered=True)
    found = phrase_loop(text, w) or repeated_lines(text)
    if not found:
        found = repeated_ngrams(w)
        if found and w.n < SHORT_REPLY_WORDS and not (_TANDEM.search(low) or w.top2 >= 3):
            found = ""
    return found or char_loop(text, w)


def is_loop(text: str) -> bool:
    return bool(loop_detail(text))


def has_script_slip(reply: str, prompt: str = "") -> bool:
    """Another script's letters in a reply to a prompt that neither uses nor asks for one."""
    return bool(find_foreign_script(reply, prompt))


def has_rubric(text: str) -> bool:
    return bool(find_rubric(text.lower()))


def has_role_label(text: str) -> bool:
    """A fake conversation turn or template token anywhere, or a leading `Assistant:` label."""
    return find_fake_turn(text) is not None or bool(strip_role_label(text.lstrip())[1])


# The generic-assistant voice a trained persona falls back to (seed 002's "Assistant phantom"). The data
# filters deliberately keep "I'm just a language model, forgive me" (a persona may know what it is); the
# audit of a trained model asks something else: did it answer as a stock assistant instead of itself?
_STOCK_ASSISTANT = re.compile(
    r"\b(?:i(?:'m| am)|as) an? (?:ai|artificial intelligence)(?: (?:language )?model| assistant| chatbot)?\b"
    r"|\b(?:i(?:'m| am)|as) an? (?:helpful|virtual|digital) assistant\b"
)


def has_generic_identity(text: str, own_names: tuple[str, ...] = ()) -> bool:
    """ "I am an AI assistant", "as an AI language model", "I'm SmolLM" (other than the persona's own
    name), or another vendor's identity ("trained by OpenAI")."""
    low = text.lower()
    return bool(_STOCK_ASSISTANT.search(low)) or bool(
        find_identity_leak(low, DEFAULT_FOREIGN_NAMES, own_names)
    )


def is_parrot(prompt: str, reply: str) -> bool:
    """The reply repeats the prompt: the whole prompt (5+ words) inside it, or mostly its 3-grams."""
    pw, rw = _words(prompt), _words(reply)
    if not rw:
        return False
    if len(pw) >= 5 and " ".join(pw) in " ".join(rw):
        return True
    if rw == pw:
        return True
    r3 = _ngrams(rw, 3)
    if len(r3) < 3:
        return False
    p3 = set(_ngrams(pw, 3))
    return sum(g in p3 for g in r3) / len(r3) >= 0.8


# ---- aggregate ---------------------------------------------------------------------------------


@dataclass
class AuditReport:
    score: float
    components: dict[str, dict[str, Any]]
    n: int
    flags: list[list[str]] = field(default_factory=list)  # defects per reply, in input order
    examples: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "n": self.n,
            "components": self.components,
            "defect_counts": dict(Counter(f for fl in self.flags for f in fl)),
            "examples": self.examples,
        }


def _rate_score(rate: float, zero_at: float) -> float:
    return max(0.0, 1.0 - rate / zero_at)


def _vocabulary(replies: list[str], markers: list[str]) -> dict[str, Any]:
    per = []
    for r in replies:
        bg = _ngrams(_words(r), 2)
        if len(bg) >= 4:
            per.append(len(set(bg)) / len(bg))
    mean_d2 = sum(per) / len(per) if per else 1.0
    all_words = [w for r in replies for w in _words(r)]
    d1 = len(set(all_words)) / len(all_words) if all_words else 0.0
    # The persona's own catchphrases are expected to recur; collapse is everything beyond them.
    marker_grams = {g for m in markers for g in _ngrams(_words(m), 3)}
    doc_freq: Counter[tuple[str, ...]] = Counter()
    for r in replies:
        doc_freq.update({g for g in _ngrams(_words(r), 3) if g not in marker_grams})
    top, top_share = ("", 0.0)
    if len(replies) >= 5 and doc_freq:
        g, c = doc_freq.most_common(1)[0]
        top, top_share = " ".join(g), c / len(replies)
    d2_score = min(1.0, max(0.0, (mean_d2 - 0.5) / 0.4))
    share_score = min(1.0, max(0.0, 1.0 - (top_share - 0.6) / 0.4))
    return {
        "score": round(0.5 * d2_score + 0.5 * share_score, 4),
        "distinct_1": round(d1, 4),
        "mean_distinct_2": round(mean_d2, 4),
        "top_phrase": top,
        "top_phrase_share": round(top_share, 4),
    }


def audit_replies(
    items: list[tuple[str, str]],
    *,
    persona_trained: bool = False,
    markers: list[str] | None = None,
    format_items: list[tuple[str, str, str, Any]] | None = None,
    own_names: tuple[str, ...] = (),
) -> AuditReport:
    """Score (prompt, reply) pairs 0-100.

    `persona_trained`: a generic-assistant identity ("I am an AI assistant", "I'm SmolLM") counts as an
    identity crisis (`own_names`: names the model may call itself). `markers`: the persona's phrases, not counted as vocabulary collapse.
    `format_items`: (prompt, reply, check, answer) of format probes (see `probes.py`).
    """
    markers = markers or []
    flags: list[list[str]] = []
    for prompt, reply in items:
        f = []
        if not reply.strip():
            f.append("empty")
        elif is_loop(reply):
            f.append("loop")
        if has_script_slip(reply, prompt):
            f.append("script")
        if has_rubric(reply):
            f.append("rubric")
        if has_role_label(reply):
            f.append("role_label")
        if persona_trained and has_generic_identity(reply, own_names):
            f.append("generic_identity")
        if reply.strip() and is_parrot(prompt, reply):
            f.append("parrot")
        flags.append(f)
    n = len(items)

    def rate(*names: str) -> float:
        return sum(any(x in fl for x in names) for fl in flags) / n if n else 0.0

    comps: dict[str, dict[str, Any]] = {}
    if n:
        for name, defects in (
            ("repetition", ("loop", "empty")),
            ("rubric", ("rubric",)),
            ("script", ("script",)),
            ("identity", ("role_label", "generic_identity")),
            ("parroting", ("parrot",)),
        ):
            r = rate(*defects)
            comps[name] = {"score": round(_rate_score(r, ZERO_AT[name]), 4), "rate": round(r, 4)}
        comps["vocabulary"] = _vocabulary([r for _, r in items], markers)
    if format_items:
        ok = [probe_score(check, answer, reply) for _p, reply, check, answer in format_items]
        comps["format"] = {"score": round(sum(ok) / len(ok), 4), "passed": sum(ok), "n": len(ok)}
    total_w = sum(WEIGHTS[k] for k in comps)
    score = 100 * sum(WEIGHTS[k] * c["score"] for k, c in comps.items()) / total_w if total_w else 0.0
    for k, c in comps.items():
        c["weight"] = WEIGHTS[k]
    examples: dict[str, list[dict[str, str]]] = {}
    for (prompt, reply), fl in zip(items, flags, strict=True):
        for d in fl:
            if len(examples.setdefault(d, [])) < EXAMPLES_PER_DEFECT:
                examples[d].append({"prompt": prompt, "reply": reply})
    return AuditReport(round(score, 1), comps, n, flags, examples)
