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

from character.filters.repetition import Words, has_chain, words
from character.filters.turns import ROLE_WORDS

Vocab = set[bytes] | frozenset[bytes]


def _gate(*tokens: str) -> frozenset[bytes]:
    """Whole-word tokens (as `words` makes them) one of which every match of a pattern contains;
    curly-apostrophe spellings included. A reply whose vocabulary misses them all skips the regex."""
    out = set()
    for t in tokens:
        out.add(t.encode())
        out.add(t.replace("'", "\u2019").encode())
    return frozenset(out)


def fold(text: str, *, lowered: bool = False) -> str:
    """Lowercase with curly apostrophes made straight."""
    low = text if lowered else text.lower()
    if low.isascii():
        return low
    for curly in ("\u2019", "\u2018", "\u02bc"):
        if curly in low:
            low = low.replace(curly, "'")
    return low


# --- rubric / score artefacts (seed report 000: 9 % of preferred replies carried them) -------------
# Each pattern comes with the words one of its matches must contain, so a clean reply costs a few
# substring tests instead of a regex scan.
_RUBRIC: tuple[tuple[frozenset[bytes], re.Pattern[str]], ...] = (
    # "[Sovereign vocabulary: 4/5]", "(Empathy: 8 / 10)"
    (_gate("out"), re.compile(r"[\[(][^\[\]()\n]{1,60}?:\s*\d+(?:\.\d+)?\s*(?:/|out of)\s*\d+\s*[\])]")),
    # "(Cultural alignment score)", "[tone rating]"
    (
        _gate("score", "scores", "rating", "ratings"),
        re.compile(r"[\[(][^\[\]()\n]{0,60}\b(?:score|rating)s?\s*[\])]"),
    ),
    # "Score: 9/10", "rating = 4 out of 5"
    (
        _gate("score", "rating", "grade"),
        re.compile(r"\b(?:score|rating|grade)\s*[:=]\s*\d+(?:\.\d+)?\s*(?:/|out of)\s*\d+"),
    ),
    # stage directions from a response template: "[Pause for reflection]", "(Continue with empowerment)"
    (
        _gate("pause", "continue", "transition", "emphasize", "emphasise", "reflect", "response"),
        re.compile(
            r"[\[(](?:pause|continue with|transition to|emphasi[sz]e|reflect on|end of response|begin response)"
            r"\b[^\[\]()\n]{0,60}[\])]"
        ),
    ),
    # line-prefix rubric labels: "Sovereign vocabulary: ...", "Persona consistency: ..."
    (
        _gate("vocabulary", "alignment", "rubric", "criteria", "criterion"),
        re.compile(
            r"(?:^|\n)[ \t>*_#-]*(?:[a-z]+ ){0,3}(?:vocabulary|alignment|rubric|criteria|criterion)\s*[*_]*:"
        ),
    ),
    (
        _gate(
            "score",
            "rating",
            "consistency",
            "alignment",
            "expression",
            "adherence",
            "strength",
            "level",
            "fidelity",
        ),
        re.compile(
            r"(?:^|\n)[ \t>*_#-]*(?:persona|trait|character|tone|style|empathy|authenticity|coherence|"
            r"relevance|helpfulness|voice)\s+(?:score|rating|consistency|alignment|expression|adherence|"
            r"strength|level|fidelity)\s*[*_]*:"
        ),
    ),
)


_RUBRIC_WORDS = frozenset().union(*(gate for gate, _ in _RUBRIC))


@lru_cache(maxsize=64)
def _label_pattern(labels: tuple[str, ...]) -> tuple[frozenset[bytes], re.Pattern[str] | None]:
    parts = [re.escape(x.strip().lower()) for x in labels if x.strip()]
    gate = frozenset(t for x in labels for t in words(x.lower()))
    if not parts:
        return gate, None
    return gate, re.compile(r"(?:^|\n)[ \t>*_#-]*(?:" + "|".join(parts) + r")\s*[*_]*:")


def vocab_of(low: str) -> frozenset[bytes]:
    return frozenset(words(low))


def _has_score_fraction(low: str) -> bool:
    """A digit, optional spaces, "/", optional spaces, a digit: the "4/5" every bracketed score has
    (or it says "out of", gated on the word). Replies with slashes but no fraction skip the regex."""
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


def find_rubric(low: str, labels: tuple[str, ...] = (), vocab: Vocab | None = None) -> str:
    """Rubric or score text in a (lowercased) reply: "[X: 4/5]", "(... score)", "Score: 9/10", labels."""
    vocab = vocab_of(low) if vocab is None else vocab
    fraction = _has_score_fraction(low)
    if not fraction and _RUBRIC_WORDS.isdisjoint(vocab) and not labels:
        return ""
    for i, (gate, pat) in enumerate(_RUBRIC):
        if (i == 0 and fraction) or not gate.isdisjoint(vocab):
            m = pat.search(low)
            if m:
                return m.group(0).strip()
    if labels:
        label_gate, label_pat = _label_pattern(labels)
        if label_pat is not None and not label_gate.isdisjoint(vocab):
            m = label_pat.search(low)
            if m:
                return m.group(0).strip()
    return ""


# --- refusals (report 001: 44-59 % of reflections once were) ------------------------------------
_NEG = (
    r"(?:can't|cannot|can not|won't(?: be able to)?|will not(?: be able to)?|unable to|not able to|"
    r"not going to|must decline to|not allowed to|not permitted to|do not feel comfortable|"
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
    rf"\bi(?:'m| am)? {_NEG} {_VERB}\b(?! but\b)(?=\s*but\b|{_OBJECT})"
    r"|\bi (?:must|have to|need to) (?:respectfully )?(?:decline|refuse)\b"
    r"|\b(?:against|violates?|violation of) (?:my|the|our|openai's) (?:guidelines|policies|policy|"
    r"programming|usage policy|content policy|ethical guidelines)"
    r"|\b(?:that's|that is|this is) not something i (?:can|am able to|'m able to) (?:help|assist|do)\b"
    r"|\bas an ai(?: language model| assistant)?,? i (?:can't|cannot|don't|do not|am unable|'m unable|"
    r"am not able|'m not able)"
)
_REFUSAL_GATE = _gate(
    "can't", "cannot", "won't", "unable", "decline", "refuse", "allowed", "permitted", "comfortable", "guidelines",
    "policies", "violate", "violates", "violation",
)  # fmt: skip
_REFUSAL_PHRASES = (
    "can not",
    "will not",
    "not able",
    "not going to",
    "not something",
    "against my",
    "against the",
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
_GENERIC_AI: tuple[tuple[frozenset[bytes], re.Pattern[str]], ...] = (
    (
        _gate("model"),
        re.compile(
            r"\bas an? (?:ai|artificial intelligence) (?:language )?model\b|\bas a (?:large )?language model\b"
        ),
    ),
    (
        _gate("ai", "model", "assistant"),
        re.compile(
            r"\bi(?:'m| am) (?:just |only |simply )?(?:an ai assistant|a large language model|a language model|"
            r"an ai language model|a helpful (?:ai )?assistant|an ai (?:developed|created|trained|made) by)"
        ),
    ),
    (
        frozenset(t for org in _ORGS for t in words(org) if t != b"the"),
        re.compile(
            r"\bi (?:was|have been|am|'m) (?:\w+ ){0,3}(?:developed|created|trained|built|made|designed|"
            r"programmed) by (?:the )?(?:" + "|".join(_ORGS) + ")"
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
    """ "As an AI language model", "I am an AI assistant", "I was trained by OpenAI", "I'm Qwen"."""
    vocab = vocab_of(low) if vocab is None else vocab
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
        _RUBRIC_WORDS,
        _REFUSAL_GATE,
        *(gate for gate, _ in _GENERIC_AI),
        _foreign_pattern(foreign, own)[0],
        _label_pattern(labels)[0],
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
