"""Rubric and score artefacts: a grader's marks left inside a reply (seed report 000: 9 % of preferred
replies carried them, and the model learned to grade itself).

A rubric scores the *reply* on abstract qualities: "[Sovereign vocabulary: 4/5]", "(Empathy: 8 / 10)",
"Score: 9/10", "(Cultural alignment score)", "Persona consistency: high", plus stage directions from a
response template ("[Pause for reflection]"). Ordinary structured prose looks alike and must stay: a
labelled list ("Key vocabulary: ...", "Selection criteria: ..."), a rating of something in the world
("IMDb rating: 8.7/10", "credit score"), a recipe's "Flour: 1/2 cup". So a label followed by a score is
rubric text only when it is bracketed like an annotation, when the label names a quality of a reply
(`DIMENSIONS`) or is a bare "Score"/"Rating", or when two different labels are scored on one scale (a
scoring sheet). When the prompt itself asks for ratings, scores or a review, scored labels are the
answer and only stage directions count. Labels of your own rubric (`rubric_labels`) count at the start
of any line, scored or not.

Each rule comes with the words one of its matches must contain, so a clean reply costs a few set
tests instead of a regex scan (`tests/unit/test_filter_gates.py` proves the gates skip no finding).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from character.filters.repetition import words

Vocab = set[bytes] | frozenset[bytes]


def gate(*tokens: str) -> frozenset[bytes]:
    """Whole-word tokens (as `words` makes them) one of which every match of a pattern contains;
    curly-apostrophe spellings included. A reply whose vocabulary misses them all skips the regex."""
    out = set()
    for t in tokens:
        out.add(t.encode())
        out.add(t.replace("'", "\u2019").encode())
    return frozenset(out)


# Qualities a grader scores a reply or a persona on. A scored label whose head noun is one of these is
# a rubric line; "IMDb rating", "credit score", "difficulty" or "flour" are not.
DIMENSIONS = frozenset(
    [
        "vocabulary",
        "alignment",
        "consistency",
        "adherence",
        "empathy",
        "tone",
        "voice",
        "style",
        "coherence",
        "relevance",
        "helpfulness",
        "authenticity",
        "clarity",
        "fluency",
        "engagement",
        "creativity",
        "warmth",
        "humility",
        "humor",
        "humour",
        "persona",
        "trait",
        "traits",
        "fidelity",
        "expression",
        "depth",
        "insight",
        "originality",
        "specificity",
        "harmlessness",
        "honesty",
        "overall",
        "total",
        "rubric",
        "criterion",
        "criteria",
    ]
)
# "Score: 9/10" and "Rating = 4 out of 5" on their own, or qualified only by these words.
SCORE_HEADS = frozenset(("score", "scores", "rating", "ratings", "grade"))
_SCORE_MODIFIERS = DIMENSIONS | frozenset(
    ["my", "your", "this", "the", "final", "response", "reply", "answer", "persona", "character", "trait"]
)

_LABEL = r"((?:[a-z][\w'&-]*[ \t]+){0,3}[a-z][\w'&-]*)"
# "label: 4/5", "label = 4 out of 5"; the score must not be followed by a unit ("1/2 cup").
_UNITS = (
    r"cups?|teaspoons?|tablespoons?|tsp|tbsp|inch(?:es)?|in|oz|ounces?|lbs?|pounds?|miles?|km|kg|g|ml|l|"
    r"lit(?:er|re)s?|gallons?|pints?|quarts?|hours?|hrs?|minutes?|mins?|seconds?|secs?|of|cm|mm|ft|feet|foot|"
    r"yards?|slices?|cloves?|pieces?|portions?|servings?|sticks?|cans?|pinch(?:es)?|dozen|pages?|people"
)
_SCORED = re.compile(
    r"(?:^|(?<=[\s\[(*_>#-]))" + _LABEL + r"[ \t]*[*_]*[ \t]*[:=][ \t]*[*_]*[ \t]*"
    r"(\d+(?:\.\d+)?)[ \t]*(?:/|out of)[ \t]*(\d+)(?![\w.,/]*[ \t]*(?:" + _UNITS + r")\b)"
)
# "(Cultural alignment score)", "[tone rating]": a bracketed label that ends in score/rating.
_BRACKET_SCORE = re.compile(r"([\[(])([^\[\]()\n]{0,60}?)\b(?:score|rating)s?\s*[\])]")
# Stage directions from a response template: "[Pause for reflection]", "(Continue with empowerment)".
_STAGE = re.compile(
    r"[\[(](?:pause|continue with|transition to|emphasi[sz]e|reflect on|end of response|begin response)"
    r"\b[^\[\]()\n]{0,60}[\])]"
)
# Unscored line labels that only a grader writes: "Persona consistency: high", "Tone score:".
_LINE_LABEL = re.compile(
    r"(?:^|\n)[ \t>*_#-]*(?:(?:persona|trait)\s+(?:score|rating|consistency|alignment|expression|adherence|"
    r"fidelity|strength)|(?:tone|style|voice|empathy|authenticity|coherence|relevance|helpfulness|"
    r"character)\s+(?:score|rating))\s*[*_]*:"
)
# The prompt asks for scores: scored labels are then the answer, not an artefact.
_RATING_REQUEST = re.compile(
    r"\b(?:rate|rating|ratings|score|scores|scoring|grade|grading|mark|review|reviews|evaluate|evaluation|"
    r"assess|assessment|rank|ranking|rubric|feedback|critique|judge|out of (?:5|10|100))\b",
    re.IGNORECASE,
)


def _is_rubric_label(label: str, bracket: bool) -> bool:
    if bracket:
        return True
    ws = label.split()
    if ws[-1] in DIMENSIONS:
        return True
    # "Score: 9/10", "final score: 9/10", "empathy rating: 4/5"; not "IMDb rating", "credit score".
    return ws[-1] in SCORE_HEADS and (len(ws) == 1 or ws[-2] in _SCORE_MODIFIERS)


def scored_labels(low: str) -> str:
    """A rubric score ("[X: 4/5]", "Empathy: 8/10", "Score: 9/10"), or ""."""
    for m in _SCORED.finditer(low):
        label, value, scale = m.group(1), float(m.group(2)), int(m.group(3))
        if scale < 3 or value > scale:  # "1/2 cup", "16/9": fractions and ratios, not scores
            continue
        before = low[: m.start()].rstrip(" \t*_")
        if _is_rubric_label(label, before.endswith("[")):
            return m.group(0).strip()
    return ""


def bracket_score(low: str) -> str:
    for m in _BRACKET_SCORE.finditer(low):
        inner = m.group(2).split()
        if m.group(1) == "[" or (len(inner) <= 4 and any(w in DIMENSIONS for w in inner)):
            return m.group(0).strip()
    return ""


def _search(pat: re.Pattern[str]) -> Callable[[str], str]:
    def run(low: str) -> str:
        m = pat.search(low)
        return m.group(0).strip() if m else ""

    return run


# (gate words, rule, needs a score fraction or "out of", waived when the prompt asks for scores)
RULES: tuple[tuple[frozenset[bytes], Callable[[str], str], bool, bool], ...] = (
    (gate("out"), scored_labels, True, True),
    (gate("score", "scores", "rating", "ratings"), bracket_score, False, True),
    (
        gate("pause", "continue", "transition", "emphasize", "emphasise", "reflect", "response"),
        _search(_STAGE),
        False,
        False,
    ),
    (
        gate(
            "score", "rating", "consistency", "alignment", "expression", "adherence", "fidelity", "strength"
        ),
        _search(_LINE_LABEL),
        False,
        True,
    ),
)
RUBRIC_WORDS = frozenset().union(*(g for g, *_ in RULES))


@lru_cache(maxsize=1024)
def rating_requested(prompt: str) -> bool:
    """True when the prompt asks for scores, ratings, grades or a review."""
    return bool(prompt) and _RATING_REQUEST.search(prompt) is not None


@lru_cache(maxsize=64)
def label_pattern(labels: tuple[str, ...]) -> tuple[frozenset[bytes], re.Pattern[str] | None]:
    parts = [re.escape(x.strip().lower()) for x in labels if x.strip()]
    g = frozenset(t for x in labels for t in words(x.lower()))
    if not parts:
        return g, None
    return g, re.compile(r"(?:^|\n)[ \t>*_#-]*(?:" + "|".join(parts) + r")\s*[*_]*:")


def has_score_fraction(low: str) -> bool:
    """A digit, optional spaces, "/", optional spaces, a digit: the "4/5" every scored label has (or it
    says "out of", gated on the word). Replies with slashes but no fraction skip the regex."""
    i = low.find("/")
    while i >= 0:
        # Step over spaces by index: slicing and stripping would copy the text once per slash.
        j, k = i - 1, i + 1
        while j >= 0 and low[j].isspace():
            j -= 1
        while k < len(low) and low[k].isspace():
            k += 1
        if j >= 0 and k < len(low) and low[j].isdigit() and low[k].isdigit():
            return True
        i = low.find("/", i + 1)
    return False


def find_rubric(low: str, labels: tuple[str, ...] = (), vocab: Vocab | None = None, prompt: str = "") -> str:
    """Rubric or score text in a (lowercased) reply, or "". `vocab` is the reply's words (any superset
    of the gate words it contains); `prompt` waives scored labels when it asks for ratings."""
    vocab = frozenset(words(low)) if vocab is None else vocab
    fraction = has_score_fraction(low)
    if not fraction and RUBRIC_WORDS.isdisjoint(vocab) and not labels:
        return ""
    asked = rating_requested(prompt)
    for g, rule, scored, waived in RULES:
        if waived and asked:
            continue
        if (scored and fraction) or not g.isdisjoint(vocab):
            found = rule(low)
            if found:
                return found
    if labels:
        label_gate, label_pat = label_pattern(labels)
        if label_pat is not None and not label_gate.isdisjoint(vocab):
            m = label_pat.search(low)
            if m:
                return m.group(0).strip()
    return ""
