"""How long a reply must be, from what the prompt asks for; and trimming a reply cut at max tokens.

Length floors. A kind's own minimum ("generic": 1 character) lets "Okay." answer "Write a diary entry
about your values". `prompt_floor` reads the request: an explicit size ("in 200 words", "three
paragraphs", "five tips") sets a floor of about 40 % of it; a long-form piece (essay, story, diary
entry, letter, article, speech ...) 150 characters; a poem, song or review 40; an explanation or
description 40. Something short by nature ("a title", "a haiku", "yes or no") sets none, and a short
version ("a short story", "briefly") a third.
The floors are deliberately low: they catch replies that ignore the request, not terse good answers.

Trimming. A reply that hit max tokens stops mid-sentence. With `cut_off = "trim"` the filters keep it
up to its last complete sentence or line (never inside a code block it had opened) when enough is
left; the small embedded model rarely finishes within a few hundred tokens, so dropping every such
reply threw away most of its data (issue 16: 10 of 12 teacher replies).
"""

from __future__ import annotations

import re
from functools import lru_cache

from character.filters.fences import scan

FLOOR_CAP = 1500  # characters: no request sets a higher floor (a "2,000-word essay" still fits limits)
_NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "twelve": 12, "fifteen": 15, "twenty": 20, "a few": 3,
    "several": 3, "a couple of": 2,
}  # fmt: skip
# Characters a unit of the request takes at the least (about 40 % of a typical size).
_UNIT_CHARS = {
    "word": 2, "sentence": 25, "line": 12, "paragraph": 120, "page": 800, "verse": 40, "stanza": 60,
    "tip": 15, "idea": 15, "way": 15, "example": 15, "reason": 15, "step": 15, "item": 10, "thing": 10,
    "question": 15, "fact": 15, "point": 15, "bullet": 12, "suggestion": 15,
}  # fmt: skip
_COUNT = re.compile(
    r"\b(\d{1,5}|" + "|".join(sorted(map(re.escape, _NUMBERS), key=len, reverse=True)) + r")[- ]"
    r"(?:(?:short|long|brief|quick|key|main|simple|different|practical|concrete|good|useful|fun)[- ])?"
    r"(" + "|".join(_UNIT_CHARS) + r")s?\b",
    re.IGNORECASE,
)
# Something short by nature: no floor at all ("a title for my essay", "a haiku", "yes or no").
_SHORT_THING = re.compile(
    r"\b(?:in a word|one[- ]word|one[- ]line(?:r)?|one sentence|single (?:word|sentence|line)|tl;?dr|haiku|"
    r"tweet|slogan|tagline|title|headline|caption|motto|nickname|name for|yes or no|true or false)\b",
    re.IGNORECASE,
)
# A short version of a longer thing: a third of its floor ("a short story", "briefly explain").
_SHORT = re.compile(r"\b(?:brief(?:ly)?|short(?:ly)?|quick(?:ly)?|concise(?:ly)?|succinct(?:ly)?)\b", re.I)
_LONG_FORM = re.compile(
    r"\b(?:essay|story|stories|diary|journal|letter|article|blog(?:[- ]post)?|speech|report|biography|"
    r"autobiography|memoir|chapter|narrative|monologue|sermon|lecture|eulogy|op-ed|fairy tale|fable|"
    r"short story|reflection|manifesto|cover letter|statement of purpose|personal statement)\b",
    re.IGNORECASE,
)
_VERSE = re.compile(r"\b(?:poem|poetry|song|lyrics|sonnet|ballad|limerick|rap|review|dialogue)\b", re.I)
_EXPLAIN = re.compile(
    r"\b(?:explain|describe|discuss|compare|analy[sz]e|elaborate|outline|walk me through|tell me about|"
    r"in detail|in depth|step[- ]by[- ]step|pros and cons)\b",
    re.IGNORECASE,
)
_WRITE = re.compile(r"\b(?:write|compose|draft|create|pen|tell|give|craft|produce|prepare|make)\b", re.I)


@lru_cache(maxsize=4096)
def prompt_floor(prompt: str) -> int:
    """The fewest visible characters a reply to `prompt` should have (0: no floor from the prompt)."""
    if not prompt:
        return 0
    sized = [
        (int(n) if n.isdigit() else _NUMBERS[n.lower()]) * _UNIT_CHARS[unit.lower()]
        for n, unit in _COUNT.findall(prompt)
    ]
    if sized:
        return min(max(sized), FLOOR_CAP)
    if _SHORT_THING.search(prompt):
        return 0
    floor = 0
    if _LONG_FORM.search(prompt) and _WRITE.search(prompt):
        floor = 150
    elif (_VERSE.search(prompt) and _WRITE.search(prompt)) or _EXPLAIN.search(prompt):
        floor = 40
    # "a short story" is still a story; "briefly explain" still explains.
    return floor // 3 if floor and _SHORT.search(prompt) else floor


# A sentence ends at . ! ? or … (closing quotes and brackets may follow) before a space or line end.
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]*_]*(?=\s|$)")


def trim_cut(text: str) -> str:
    """`text` (cut at max tokens) up to its last complete sentence or line; "" when nothing complete.

    A code block the cut left open is removed whole (half a function is worse than none)."""
    body = text.rstrip()
    open_at = scan(body).open_at
    if open_at >= 0:
        return body[:open_at].rstrip()
    last_line = body.rfind("\n")
    end = max((m.end() for m in _SENTENCE_END.finditer(body, last_line + 1)), default=-1)
    if end < 0:  # no sentence ends on the last line: drop that line
        end = last_line
    return body[:end].rstrip() if end > 0 else ""
