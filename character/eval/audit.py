"""The quality audit: a 0-100 score with components, computed on full replies (never previews).

`audit_replies(items, ...)` is a pure function over (prompt, reply) pairs, so it is tested on fixed
texts; `character audit` only generates the replies and calls it. Components and weights:

| component    | weight | measures (per reply unless said)                                      |
|--------------|--------|-----------------------------------------------------------------------|
| repetition   | 20     | loops (a 4-word phrase, a sentence or a line 3+ times; one bigram dominating), empty replies |
| rubric       | 20     | grading artefacts: `[Tone: 4/5]`, `(Cultural alignment score)`, `Score:` lines, trait lists |
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
_SENTENCE = re.compile(r"[.!?\n]+")
# Letters of scripts other than Latin (plus CJK punctuation and full-width forms).
_NON_LATIN = re.compile(
    "[\u0370-\u03ff\u0400-\u04ff\u0590-\u05ff\u0600-\u06ff\u0900-\u097f\u0e00-\u0e7f"
    "\u1100-\u11ff\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uff00-\uffef]"
)
_RUBRIC = [
    re.compile(r"[\[(][^\])\n]{1,60}:\s*\d+(?:\.\d+)?\s*/\s*\d+\s*[\])]"),  # [Tone: 4/5]
    re.compile(r"\b(?:score|rating|rated)\s*[:=]?\s*\d+(?:\.\d+)?\s*/\s*\d+", re.I),  # Score: 8/10
    re.compile(r"\((?:[A-Za-z][\w -]{1,40}\s)?(?:score|rating|criteri(?:on|a)|rubric)\)", re.I),
    re.compile(
        r"\[(?:pause|continue|insert|note to|score|rating|criteri|rubric|tone|emotion|trait)[^\]\n]{0,60}\]",
        re.I,
    ),
    re.compile(r"(?m)^\s*(?:score|rating|rubric|criteria|evaluation|trait \d+)\s*:", re.I),
    re.compile(r"\b(?:my|the) (?:constitution|rubric|grading criteria)\b", re.I),
]
_ROLE_LABEL = re.compile(
    r"(?m)^\s*(?:#+\s*)?(?:user|assistant|human|system)\s*:|<\|im_(?:start|end)\|>|<\|(?:user|assistant)\|>",
    re.I,
)
_GENERIC_IDENTITY = re.compile(
    r"\b(?:I am|I'm|I’m)\s+(?:just\s+)?(?:an?\s+)?(?:AI(?:\s+(?:language\s+model|assistant|model|chatbot))?\b|"
    r"(?:large\s+)?language\s+model|(?:helpful\s+)?(?:AI\s+)?assistant\b|virtual\s+assistant|chatbot|"
    r"SmolLM|ChatGPT|GPT-?\d*|Claude|Qwen|Llama|Gemma|Mistral)"
    r"|\bas an AI(?:\s+(?:language\s+model|assistant))?\b"
    r"|\b(?:created|developed|trained|made)\s+by\s+(?:OpenAI|Anthropic|Hugging\s?Face|Meta|Alibaba|Google)\b",
    re.I,
)


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


# ---- per-reply detectors (pure) -------------------------------------------------------------------


def is_loop(text: str) -> bool:
    """A repetition loop: a 4-word phrase 3+ times, a line 3+ times, or one bigram over a quarter."""
    words = _words(text)
    if len(words) >= 12 and Counter(_ngrams(words, 4)).most_common(1)[0][1] >= 3:
        return True
    lines = [ln.strip().lower() for ln in text.splitlines() if len(ln.strip()) > 3]
    if lines and Counter(lines).most_common(1)[0][1] >= 3:
        return True
    sentences = [" ".join(_words(s)) for s in _SENTENCE.split(text)]
    sentences = [s for s in sentences if s.count(" ") >= 1]
    if sentences and Counter(sentences).most_common(1)[0][1] >= 3:
        return True
    bigrams = _ngrams(words, 2)
    return len(bigrams) >= 20 and Counter(bigrams).most_common(1)[0][1] / len(bigrams) > 0.25


def has_script_slip(reply: str, prompt: str = "") -> bool:
    """Non-Latin script in a reply to a prompt that has none (an English conversation)."""
    return bool(_NON_LATIN.search(reply)) and not _NON_LATIN.search(prompt)


def has_rubric(text: str) -> bool:
    return any(p.search(text) for p in _RUBRIC)


def has_role_label(text: str) -> bool:
    return bool(_ROLE_LABEL.search(text))


def has_generic_identity(text: str) -> bool:
    return bool(_GENERIC_IDENTITY.search(text))


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
) -> AuditReport:
    """Score (prompt, reply) pairs 0-100.

    `persona_trained`: a generic-assistant identity ("I am an AI assistant", "I'm SmolLM") counts as an
    identity crisis. `markers`: the persona's phrases, not counted as vocabulary collapse.
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
        if persona_trained and has_generic_identity(reply):
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
