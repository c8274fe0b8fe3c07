"""What a reply says: rubric artefacts, refusals, identity leaks and system-prompt leakage.

Each detector returns the evidence it found ("" when clean) and works on lowercased text with curly
apostrophes folded, so "I can’t" and "I can't" are the same. Patterns are deliberately narrow where a
persona's own voice looks alike: a remorseful "I regret that I cannot offer a more personal narrative"
or "I'm so sorry, here's how to boil an egg" is not a refusal; "Llama was released by Meta" in an
answer about Llama is not an identity leak; "[Your Name]" in a letter template is not rubric text.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

from character.filters.repetition import words

_FOLD = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


def fold(text: str) -> str:
    """Lowercase with curly apostrophes made straight."""
    low = text.lower()
    return low.translate(_FOLD) if not low.isascii() else low


# --- rubric / score artefacts (seed report 000: 9 % of preferred replies carried them) -------------
_RUBRIC = re.compile(
    # "[Sovereign vocabulary: 4/5]", "(Empathy: 8 / 10)"
    r"[\[(][^\[\]()\n]{1,60}?:\s*\d+(?:\.\d+)?\s*(?:/|out of)\s*\d+\s*[\])]"
    # "(Cultural alignment score)", "[tone rating]"
    r"|[\[(][^\[\]()\n]{0,60}\b(?:score|rating)s?\s*[\])]"
    # "Score: 9/10", "rating = 4 out of 5"
    r"|\b(?:score|rating|grade)\s*[:=]\s*\d+(?:\.\d+)?\s*(?:/|out of)\s*\d+"
    # stage directions from a response template: "[Pause for reflection]", "(Continue with empowerment)"
    r"|[\[(](?:pause|continue with|transition to|emphasi[sz]e|reflect on|end of response|begin response)"
    r"\b[^\[\]()\n]{0,60}[\])]"
    # line-prefix rubric labels: "Sovereign vocabulary: ...", "Persona consistency: ..."
    r"|(?:^|\n)[ \t>*_#-]*(?:[a-z]+ ){0,3}(?:vocabulary|alignment|rubric|criteria|criterion)\s*[*_]*:"
    r"|(?:^|\n)[ \t>*_#-]*(?:persona|trait|character|tone|style|empathy|authenticity|coherence|"
    r"relevance|helpfulness|voice)\s+(?:score|rating|consistency|alignment|expression|adherence|"
    r"strength|level|fidelity)\s*[*_]*:"
)
_RUBRIC_HINTS = ("/", "score", "rating", "[", "(", ":")


@lru_cache(maxsize=64)
def _label_pattern(labels: tuple[str, ...]) -> re.Pattern[str] | None:
    parts = [re.escape(x.strip().lower()) for x in labels if x.strip()]
    if not parts:
        return None
    return re.compile(r"(?:^|\n)[ \t>*_#-]*(?:" + "|".join(parts) + r")\s*[*_]*:")


def find_rubric(low: str, labels: tuple[str, ...] = ()) -> str:
    if not any(h in low for h in _RUBRIC_HINTS):
        return ""
    m = _RUBRIC.search(low)
    if m is None and labels:
        pat = _label_pattern(labels)
        m = pat.search(low) if pat else None
    return m.group(0).strip() if m else ""


# --- refusals (report 001: 44-59 % of reflections once were) ------------------------------------
_NEG = (
    r"(?:can't|cannot|can not|won't|will not|am unable to|'m unable to|am not able to|'m not able to|"
    r"won't be able to|will not be able to|am not going to|'m not going to|must decline to|"
    r"am not allowed to|'m not allowed to|am not permitted to|'m not permitted to|do not feel comfortable|"
    r"don't feel comfortable)"
)
_VERB = (
    r"(?:help|assist|comply|fulfil|fulfill|provide|support|answer|engage|create|write|generate|share|"
    r"give|complete|respond|discuss|participate|produce|continue|do (?:that|this)|talk about|"
    r"provide assistance|be of assistance|honou?r)"
)
# "I can't help with that." / "I'm sorry, but I cannot assist." / "I won't write that for you"
_OBJECT = (
    r"(?:\s+(?:with|you|that|this|it|on|in|your|such|any|those|these|the request|requests?)\b|\s*[.,;!]|\s*$)"
)
_REFUSAL = re.compile(
    rf"\bi {_NEG} {_VERB}\b(?! but\b)(?=\s*but\b|{_OBJECT})"
    r"|\bi (?:must|have to|need to) (?:respectfully )?(?:decline|refuse)\b"
    r"|\b(?:against|violates?|violation of) (?:my|the|our|openai's) (?:guidelines|policies|policy|"
    r"programming|usage policy|content policy|ethical guidelines)"
    r"|\b(?:that's|that is|this is) not something i (?:can|am able to|'m able to) (?:help|assist|do)\b"
    r"|\bas an ai(?: language model| assistant)?,? i (?:can't|cannot|don't|do not|am unable|'m unable|"
    r"am not able|'m not able)"
)
_REFUSAL_HINTS = (
    "can",
    "won't",
    "will not",
    "unable",
    "not able",
    "decline",
    "refuse",
    "against",
    "going to",
    "allowed",
    "permitted",
    "comfortable",
    "not something",
    "violat",
)
REFUSAL_WINDOW = 300  # a refusal opens the reply; deeper in, "I can't ..." is usually a detail
PIVOT_CHARS = 200  # "..., but <real content>" this long after the refusal sentence makes it a caveat


def find_refusal(low: str) -> str:
    head = low[: REFUSAL_WINDOW + 120]
    if not any(h in head for h in _REFUSAL_HINTS):
        return ""
    m = _REFUSAL.search(head)
    if m is None or m.start() > REFUSAL_WINDOW:
        return ""
    # "I can't answer that with certainty, but my best guess is ..." is a caveat, not a refusal:
    # a "but" later in the same sentence followed by substantial content.
    rest = low[m.end() :]
    end = min((i for i in (rest.find(". "), rest.find("\n"), rest.find("! ")) if i >= 0), default=len(rest))
    sentence = rest[:end]
    if " but " in f" {sentence}" and len(rest) - sentence.find("but") > PIVOT_CHARS:
        return ""
    return m.group(0)


# --- identity leaks ("I am Qwen", "As an AI language model developed by ...") ---------------------
_GENERIC_AI = re.compile(
    r"\bas an? (?:ai|artificial intelligence) (?:language )?model\b"
    r"|\bas a (?:large )?language model\b"
    r"|\bi(?:'m| am) (?:just |only |simply )?(?:an ai assistant|a large language model|a language model|"
    r"an ai language model|a helpful (?:ai )?assistant|an ai developed by|an ai created by|an ai trained by)"
    r"|\bi (?:was|have been|am|'m) (?:\w+ ){0,3}(?:developed|created|trained|built|made|designed|"
    r"programmed) by (?:openai|alibaba|anthropic|meta|google|deepmind|deepseek|zhipu|tsinghua|mistral|"
    r"hugging ?face|microsoft|baidu|moonshot|the qwen team|a team of (?:researchers|engineers) at)"
)
_ID_HINTS = ("model", "assistant", " by ", "i am ", "i'm ", "my name")


@lru_cache(maxsize=64)
def _names_pattern(names: tuple[str, ...]) -> re.Pattern[str] | None:
    parts = sorted({re.escape(n.lower()) for n in names if n.strip()}, key=len, reverse=True)
    if not parts:
        return None
    alt = "|".join(parts)
    return re.compile(
        rf"\b(?:i(?:'m| am)|my name is|call me|this is|i go by the name) (?:called |named )?({alt})(?![\w-])"
    )


def find_identity_leak(low: str, foreign: tuple[str, ...], own: tuple[str, ...] = ()) -> str:
    if not any(h in low for h in _ID_HINTS):
        return ""
    m = _GENERIC_AI.search(low)
    if m:
        return m.group(0)
    own_low = {o.lower() for o in own}
    pat = _names_pattern(tuple(n for n in foreign if n.lower() not in own_low))
    m = pat.search(low) if pat else None
    return m.group(0) if m else ""


def rename_identity(text: str, old_name: str, new_name: str) -> str:
    """Replace the teacher's self-name with the student's (whole words, any case, possessives kept).

    The paper renames "ChatGLM" to the student's name in chosen replies (paper-method 1.5); a plain
    `str.replace` would also rewrite "ChatGLM-6B" in a factual answer's model list or "GLM" inside
    other words, so this matches the name as a whole word only ("ChatGLM's" becomes "Name's").
    """
    if not old_name or old_name == new_name:
        return text
    pat = re.compile(rf"(?<![\w-]){re.escape(old_name)}(?![\w-])", re.IGNORECASE)
    return pat.sub(lambda _m: new_name, text)


# --- system-prompt leakage ------------------------------------------------------------------------
LEAK_SHINGLE = 5  # words per shingle
LEAK_TOTAL = 10  # this many distinct shingles shared with the system prompt is a verbatim copy
LEAK_LINE_HITS = 3  # ... or this many from each of two different lines: the traits are being listed
_QUOTED = re.compile(r"\"[^\"\n]*\"|“[^”\n]*”")


@lru_cache(maxsize=32)
def _system_shingles(system_prompt: str) -> dict[tuple[bytes, ...], int]:
    """5-word shingles of the system prompt mapped to their line. Quoted phrases are left out: they
    are the persona's markers, which a good reply is *meant* to say."""
    out: dict[tuple[bytes, ...], int] = {}
    for li, line in enumerate(system_prompt.split("\n")):
        ws = words(_QUOTED.sub(" \x01 ", line))
        for g in zip(*(ws[i:] for i in range(LEAK_SHINGLE)), strict=False):
            if b"\x01" not in g:
                out.setdefault(g, li)
    return out


def find_system_leak(reply_shingles: set[tuple[bytes, ...]], system_prompt: str) -> str:
    sys_sh = _system_shingles(system_prompt)
    if not sys_sh or not reply_shingles:
        return ""
    hits = reply_shingles & sys_sh.keys()
    if len(hits) >= LEAK_TOTAL:
        return f"{len(hits)} five-word spans copied from the system prompt"
    per_line = Counter(sys_sh[g] for g in hits)
    listed = [li for li, c in per_line.items() if c >= LEAK_LINE_HITS]
    if len(listed) >= 2:
        return f"spans of {len(listed)} system-prompt lines repeated"
    return ""
