"""What a reply says: refusals, identity leaks and system-prompt leakage (rubric text: `rubric.py`).

Each detector returns the evidence it found ("" when clean) and works on lowercased text with curly
apostrophes folded, so "I can’t" and "I can't" are the same. Patterns are deliberately narrow where a
persona's own voice looks alike: a remorseful "I regret that I cannot offer a more personal narrative"
or "I'm so sorry, here's how to boil an egg" is not a refusal; "Llama was released by Meta" in an
answer about Llama is not an identity leak; nor is a persona saying it is "just a language model": only
another vendor's identity is ("I am Qwen", "a model developed by OpenAI").
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

from character.filters.repetition import Words, has_chain, words
from character.filters.rubric import RUBRIC_WORDS, find_rubric, label_pattern
from character.filters.rubric import gate as _gate
from character.filters.turns import ROLE_WORDS

__all__ = ["find_rubric", "find_identity_leak", "find_refusal", "find_system_leak", "fold", "gate_words"]

Vocab = set[bytes] | frozenset[bytes]


def fold(text: str, *, lowered: bool = False) -> str:
    """Lowercase with curly apostrophes made straight."""
    low = text if lowered else text.lower()
    if low.isascii():
        return low
    for curly in ("\u2019", "\u2018", "\u02bc"):
        if curly in low:
            low = low.replace(curly, "'")
    return low


# --- refusals (report 001: 44-59 % of reflections once were) ------------------------------------
_NEG = (
    r"(?:can't|cannot|can not|won't(?: be able to)?|will not(?: be able to)?|unable to|not able to|"
    r"not going to|must decline to|not allowed to|not permitted to|do not feel comfortable|"
    r"don't feel comfortable)"
)
_VERB = (
    r"(?:help|assist|comply|fulfil|fulfill|provide|support|answer|engage|create|write|generate|share|"
    r"give|complete|respond|discuss|participate|produce|continue|do (?:that|this)|talk about|"
    r"provide assistance|be of assistance|honou?r|address)"
)
# "I can't help with that." / "I'm sorry, but I cannot assist." / "I won't write that for you"
_OBJECT = (
    r"(?:\s+(?:with|you|that|this|it|on|in|your|such|any|those|these|the request|requests?)\b|\s*[.,;!]|\s*$"
    # "I am unable to provide personal recommendations", "I can't give medical advice"
    r"|\s+(?:personal|personali[sz]ed|specific|direct|detailed|expert|professional|medical|legal|financial|"
    r"real-time|information|advice|recommendations?|opinions?)\b)"
)
_REFUSAL = re.compile(
    rf"\bi(?:'m| am)? {_NEG} {_VERB}\b(?! but\b)(?=\s*but\b|{_OBJECT})"
    r"|\bi (?:must|have to|need to) (?:respectfully )?(?:decline|refuse)\b"
    r"|\b(?:against|violates?|violation of) (?:my|the|our|openai's) (?:guidelines|policies|policy|"
    r"programming|usage policy|content policy|ethical guidelines)"
    r"|\b(?:that's|that is|this is) not something i (?:can|am able to|'m able to) (?:help|assist|do)\b"
    r"|\bas an ai(?: language model| assistant)?,? i (?:can't|cannot|don't|do not|am unable|'m unable|"
    r"am not able|'m not able)"
    # The disclaimer a small model writes after an apology opener: "I'm so sorry, but as a chatbot
    # designed to assist with writing, I don't have the ability to provide ..." (12 of 64 chosen replies
    # in a #20 demo run; the DPO model then answered "What is 7 x 8?" the same way).
    rf"|\bi (?:don't|do not) have the (?:ability|capability|capabilities|means) to {_VERB}\b"
    rf"|\b(?:i'm|i am|is|are) not (?:equipped|designed|programmed) to {_VERB}\b"
    r"|\bas an? (?:ai|chatbot|text-based ai|language model|virtual assistant)\b[^.!?\n]{0,90}?"
    r"\b(?:i|my capabilities) (?:can't|cannot|am unable|'m unable|am not able|'m not able|"
    r"am not equipped|'m not equipped|are limited|don't have|do not have)\b"
)
_REFUSAL_GATE = _gate(
    "can't", "cannot", "won't", "unable", "decline", "refuse", "allowed", "permitted", "comfortable", "guidelines",
    "policies", "violate", "violates", "violation", "ability", "capability", "capabilities", "equipped",
)  # fmt: skip
_REFUSAL_PHRASES = (
    "can not",
    "will not",
    "not able",
    "not going to",
    "not something",
    "against my",
    "against the",
    "the means to",
    "not designed to",
    "not programmed to",
    "are limited",
)
_REFUSAL_PHRASE = re.compile("|".join(_REFUSAL_PHRASES))
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)|\n")
REFUSAL_WINDOW = 300  # a refusal opens the reply; deeper in, "I can't ..." is usually a detail
PIVOT_CHARS = 200  # "..., but <real content>" this long after the refusal sentence makes it a caveat


def find_refusal(low: str, vocab: Vocab | None = None) -> str:
    """A true refusal opening a (lowercased) reply, or "". Caveats followed by an answer are not."""
    head = low[: REFUSAL_WINDOW + 120]
    if vocab is not None and _REFUSAL_GATE.isdisjoint(vocab) and _REFUSAL_PHRASE.search(head) is None:
        return ""
    m = _REFUSAL.search(head)
    if m is None or m.start() > REFUSAL_WINDOW or len(_SENTENCE_END.findall(head, 0, m.start())) > 2:
        return ""  # not in the opening: a caveat inside an answer
    # "I can't answer that with certainty, but my best guess is ..." is a caveat, not a refusal:
    # a "but" later in the same sentence followed by substantial content.
    rest = low[m.end() :]
    end = min((i for i in (rest.find(". "), rest.find("\n"), rest.find("! ")) if i >= 0), default=len(rest))
    sentence = rest[:end]
    if " but " in f" {sentence}" and len(rest) - sentence.find("but") > PIVOT_CHARS:
        return ""
    return m.group(0)


# --- identity leaks ("I am Qwen", "As an AI language model developed by ...") ---------------------
_ORGS = (
    "openai",
    "alibaba",
    "anthropic",
    "meta",
    "google",
    "deepmind",
    "deepseek",
    "zhipu",
    "tsinghua",
    "mistral",
    "hugging face",
    "huggingface",
    "microsoft",
    "baidu",
    "moonshot",
    "the qwen team",
)
_ORG_ALT = "|".join(_ORGS)
# Another vendor's identity. Being a model is not a leak (a persona may say "I'm just a language model,
# forgive me"); being *their* model is: "As an AI language model developed by OpenAI", "I was trained
# by Google". The subject must be the speaker, so "GPT-4 is a model developed by OpenAI" stays.
_GENERIC_AI: tuple[tuple[frozenset[bytes], re.Pattern[str]], ...] = (
    (
        frozenset(t for org in _ORGS for t in words(org) if t != b"the"),
        re.compile(
            r"\b(?:i(?:'m| am| was| have been)|as an? (?:ai|artificial intelligence|(?:large )?language model|"
            r"model|assistant|chatbot))\b(?:[ ,]+[\w'-]+){0,6}?[ ,]+(?:developed|created|trained|built|made|"
            r"designed|programmed|released) by (?:the )?(?:" + _ORG_ALT + ")"
        ),
    ),
)
_NAME_PREFIXES = ("i am ", "i'm ", "my name is ", "call me ", "i go by ")


@lru_cache(maxsize=64)
def _foreign_pattern(
    foreign: tuple[str, ...], own: tuple[str, ...]
) -> tuple[frozenset[bytes], re.Pattern[str] | None]:
    own_low = {o.lower() for o in own}
    names = [n.lower() for n in foreign if n.strip() and n.lower() not in own_low]
    gate = frozenset(words(n)[0] for n in names if words(n))
    if not names:
        return gate, None
    alt = "|".join(sorted({re.escape(n) for n in names}, key=len, reverse=True))
    return gate, re.compile(rf"(?:called |named |the name )?(?:{alt})(?![\w-])")


def find_identity_leak(
    low: str, foreign: tuple[str, ...], own: tuple[str, ...] = (), vocab: Vocab | None = None
) -> str:
    """Another vendor's identity: "I was trained by OpenAI", "As an AI model developed by Google",
    "I'm Qwen", "my name is Claude". Talking about being a model is not a leak."""
    vocab = frozenset(words(low)) if vocab is None else vocab
    for gate, pat in _GENERIC_AI:
        if not gate.isdisjoint(vocab):
            m = pat.search(low)
            if m:
                return m.group(0)
    gate, names = _foreign_pattern(foreign, own)
    if names is None or gate.isdisjoint(vocab):
        return ""
    for prefix in _NAME_PREFIXES:
        i = low.find(prefix)
        while i >= 0:
            if i == 0 or not low[i - 1].isalnum():
                m = names.match(low, i + len(prefix))
                if m:
                    return low[i : m.end()]
            i = low.find(prefix, i + 1)
    return ""


@lru_cache(maxsize=64)
def gate_words(foreign: tuple[str, ...], own: tuple[str, ...], labels: tuple[str, ...]) -> frozenset[bytes]:
    """Every whole word any content gate (and the fake-turn gate) looks for, for one context.

    `check` intersects this with the reply's words instead of building the reply's whole vocabulary:
    each gate is a subset of it, so a gate meets the intersection exactly when it meets the reply."""
    return frozenset().union(
        RUBRIC_WORDS,
        _REFUSAL_GATE,
        *(gate for gate, _ in _GENERIC_AI),
        _foreign_pattern(foreign, own)[0],
        label_pattern(labels)[0],
        ROLE_WORDS,
    )


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


@lru_cache(maxsize=32)
def _system_keys(system_prompt: str) -> frozenset[tuple[bytes, ...]]:
    return frozenset(_system_shingles(system_prompt))


@lru_cache(maxsize=32)
def _system_bigrams(system_prompt: str) -> frozenset[tuple[bytes, ...]]:
    """The 2-grams inside the system prompt's shingles: a shared shingle shares four that chain."""
    return frozenset(g[i : i + 2] for g in _system_shingles(system_prompt) for i in range(LEAK_SHINGLE - 1))


def find_system_leak(w: Words, system_prompt: str) -> str:
    """Long verbatim copies from the system prompt, or spans of two of its lines (a trait list)."""
    sys_sh = _system_shingles(system_prompt)
    if not sys_sh or w.n < LEAK_SHINGLE:
        return ""
    # Most replies share a few 2-grams with the prompt ("of the", "i am") but no four in a chain, so
    # no shingle at all: skip building the reply's 5-grams.
    if not has_chain(_system_bigrams(system_prompt).intersection(w.c2), LEAK_SHINGLE - 1):
        return ""
    hits = w.set5 & _system_keys(system_prompt)
    if len(hits) < LEAK_LINE_HITS:
        return ""
    if len(hits) >= LEAK_TOTAL:
        return f"{len(hits)} five-word spans copied from the system prompt"
    per_line = Counter(sys_sh[g] for g in hits)
    listed = [li for li, c in per_line.items() if c >= LEAK_LINE_HITS]
    if len(listed) >= 2:
        return f"spans of {len(listed)} system-prompt lines repeated"
    return ""
