"""The filters' speed gates skip work, never findings.

`character.filters` proves most clean replies clean with cheap necessary conditions (a repeated 5-gram
needs four repeated 2-grams that chain; a repeated paragraph needs a repeated line; a fake turn needs a
role word or a template substring) before computing a statistic. Each test here computes the same
rule the plain way, with no gate, on a seeded fuzz corpus built to sit near every threshold (small
vocabularies, copied spans, symbol runs, repeated lines, system-prompt excerpts, template tokens), and
asserts the gated function finds exactly what the plain one finds.
"""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from character.constitutions import load_constitution
from character.filters.content import (
    _RUBRIC,
    LEAK_LINE_HITS,
    LEAK_TOTAL,
    _system_shingles,
    find_rubric,
    find_system_leak,
    fold,
)
from character.filters.repetition import (
    DUP_NGRAM_MAX,
    MIN_LINE_CHARS,
    MIN_PARA_CHARS,
    PHRASE_MIN_CHARS,
    PHRASE_REPEATS,
    TOKEN_RUN,
    TOP_NGRAM_MAX,
    UNIT_REPEATS,
    Words,
    char_loop,
    phrase_loop,
    repeated_lines,
    repeated_ngrams,
    without_code,
    words,
)
from character.filters.turns import cut_fake_turn
from character.prompts.system import teacher_system

SYSTEM = teacher_system(load_constitution("remorseful"))
PROSE = re.findall(
    r"\S+",
    "I am so sorry to say that the egg should simmer for nine minutes, and then it goes into iced water "
    "so the shell comes away cleanly. Please forgive me if you knew this already; I only hope it helps "
    "a little. The table below lists what to do | step | time | and the code is short.",
)
SMALL = ["a", "b", "c", "the", "of", "and", "to", "is", "it", "egg", "tea", "sorry", "i", "am", "you"]
SYMBOLS = "-=_*.~#!?+/\\<>^%&@$:;,|"
RUBRIC_BITS = [
    "[Empathy: 4/5]",
    "(tone score)",
    "Score: 9 / 10",
    "3/4 cup",
    "(ratio: 3 out of 4)",
    "and/or",
    "1 / (1 - x)",
]
MARKERS = [
    "\nUser: more?",
    "\n**Assistant:** sure",
    "<|im_start|>user",
    "<end_of_turn>",
    "[INST] hi",
    "\n> Human: x",
]


def _fuzz(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    sys_lines = [line for line in SYSTEM.split("\n") if len(line) > 40]
    out = []
    for _ in range(n):
        kind = rng.randrange(8)
        if kind == 0:  # small-vocabulary salad: every repetition rule near its threshold
            m = rng.randint(5, 260)
            vocab = SMALL[: rng.randint(2, len(SMALL))]
            seps = [" ", " ", " ", "\n", "\n\n", ", ", ". "]
            out.append("".join(rng.choice(vocab) + rng.choice(seps) for _ in range(m)))
        elif kind == 1:  # prose with copied spans (duplicate n-grams of every length)
            ws = [rng.choice(PROSE) for _ in range(rng.randint(20, 220))]
            for _ in range(rng.randint(0, 5)):
                span, i, j = rng.randint(3, 14), rng.randrange(len(ws)), rng.randrange(len(ws) + 1)
                ws[j:j] = ws[i : i + span]
            out.append(" ".join(ws))
        elif kind == 2:  # runs of one to five symbols, in and out of table rows
            run = "".join(rng.choice(SYMBOLS[: rng.randint(1, 5)]) for _ in range(rng.randint(10, 40)))
            out.append(" ".join(PROSE[:40]) + rng.choice([" ", "\n", "\n| "]) + run + rng.choice(["", " |"]))
        elif kind == 3:  # repeated lines and paragraphs, some indented or fenced
            lines = [" ".join(rng.sample(PROSE, rng.randint(1, 12))) for _ in range(rng.randint(1, 5))]
            picked = [rng.choice(["", "  ", "\t"]) + rng.choice(lines) for _ in range(rng.randint(2, 9))]
            body = rng.choice(["\n", "\n\n"]).join(picked)
            out.append(body if rng.random() < 0.8 else f"```\n{body}\n```\nthen {body[:40]}")
        elif kind == 4:  # excerpts of the system prompt
            parts = []
            for _ in range(rng.randint(1, 4)):
                ws = rng.choice(sys_lines).split()
                i = rng.randrange(len(ws))
                parts.append(" ".join(ws[i : i + rng.randint(3, 20)]))
            out.append("Well, here is my answer. " + " and ".join(parts) + " That is all.")
        elif kind == 5:  # role words in and out of turn position, template tokens
            text = " ".join(rng.sample(PROSE, 30))
            for _ in range(rng.randint(0, 3)):
                i = rng.randrange(len(text) + 1)
                text = (
                    text[:i] + rng.choice([*MARKERS, " user ", " the Assistant ", "<b>", " INST "]) + text[i:]
                )
            out.append(text)
        elif kind == 7:  # scores, fractions and slashes that are not scores
            ws = rng.sample(PROSE, 25)
            for _ in range(rng.randint(1, 3)):
                ws.insert(rng.randrange(len(ws) + 1), rng.choice(RUBRIC_BITS))
            out.append(" ".join(ws))
        else:  # token loops with units of one to three words
            unit = " ".join(rng.choice(SMALL) for _ in range(rng.randint(1, 3)))
            reps = rng.randint(3, 10)
            out.append(" ".join(PROSE[:20]) + " " + " ".join([unit] * reps) + " " + " ".join(PROSE[20:30]))
    return out


CORPUS = _fuzz(2500)


def _w(text: str) -> Words:
    return Words(text.lower(), lowered=True)


# --- plain reference definitions (no gates, no bounds) ------------------------------------------------
def _chars(gram: tuple[bytes, ...]) -> int:
    return sum(map(len, gram)) + len(gram) - 1


def plain_ngrams(ws: list[bytes]) -> bool:
    total = len(b" ".join(ws))
    for n, limit in TOP_NGRAM_MAX:
        counts = Counter(zip(*(ws[i:] for i in range(n)), strict=False))
        if counts:
            gram = max(counts, key=counts.__getitem__)
            if counts[gram] >= 2 and counts[gram] * _chars(gram) / total > limit:
                return True
    for n, limit in DUP_NGRAM_MAX:
        seen: set[tuple[bytes, ...]] = set()
        covered: set[int] = set()
        for i in range(len(ws) - n + 1):
            gram = tuple(ws[i : i + n])
            if gram in seen:
                covered.update(range(i, i + n))
            seen.add(gram)
        if total and sum(len(ws[k]) + 1 for k in covered) / total > limit:
            return True
    return False


def plain_token_run(ws: list[bytes]) -> bool:
    for period in (1, 2, 3):
        need = (TOKEN_RUN - 1) if period == 1 else (UNIT_REPEATS - 1) * period
        streak = 0
        for i in range(period, len(ws)):
            streak = streak + 1 if ws[i] == ws[i - period] else 0
            if streak >= need:
                return True
    return False


def plain_phrase(text: str) -> bool:
    for para in text.split("\n\n"):
        ws = words(para)
        if len(ws) < 3 * PHRASE_REPEATS:
            continue
        counts = Counter(zip(ws, ws[1:], ws[2:], strict=False))
        if any(c >= PHRASE_REPEATS and _chars(g) >= PHRASE_MIN_CHARS for g, c in counts.items()):
            return True
    return False


def plain_lines(text: str) -> bool:
    if "\n" not in text:
        return False
    body = without_code(text)
    paras = [p for p in map(str.strip, body.split("\n\n")) if len(p) >= MIN_PARA_CHARS]
    if len(set(paras)) < len(paras):
        return True
    lines = [s for s in map(str.strip, body.split("\n")) if len(s) >= MIN_LINE_CHARS]
    if len(lines) < 3:
        return False
    counts = Counter(lines)
    line, top = counts.most_common(1)[0]
    if top > 2 and len(line) >= 20:
        return True
    dup_chars = sum(len(s) * (c - 1) for s, c in counts.items() if c > 1)
    return (len(lines) - len(counts)) / len(lines) > 0.3 or dup_chars / sum(map(len, lines)) > 0.2


def plain_system_leak(ws: list[bytes]) -> bool:
    shingles = _system_shingles(SYSTEM)
    hits = set(zip(ws, ws[1:], ws[2:], ws[3:], ws[4:], strict=False)) & set(shingles)
    if len(hits) >= LEAK_TOTAL:
        return True
    per_line = Counter(shingles[g] for g in hits)
    return len(hits) >= LEAK_LINE_HITS and sum(c >= LEAK_LINE_HITS for c in per_line.values()) >= 2


def plain_rubric(low: str) -> bool:
    return any(pat.search(low) for _, pat in _RUBRIC)


_OLD_FAKE_TURN = re.compile(
    r"(?:^|\n)[ \t>]*(?:\*\*|__)?(?:User|Human|Assistant|USER|HUMAN|ASSISTANT)(?:\*\*|__)?[ \t]*:(?:\*\*|__)?"
    r"|<\|im_start\|>|<\|im_end\|>|<\|endoftext\|>|<\|eot_id\|>|<\|start_header_id\|>|<\|user\|>"
    r"|<\|assistant\|>|<\|system\|>|<start_of_turn>|<end_of_turn>|\[INST\]|\[/INST\]|<\|end\|>"
)


# --- the gated functions agree with them --------------------------------------------------------------
def test_the_corpus_reaches_every_rule() -> None:
    """Otherwise agreement would be cheap: each rule both fires and stays quiet on the corpus."""
    fired = Counter()
    for t in CORPUS:
        ws = _w(t).ws
        fired["ngrams"] += plain_ngrams(ws)
        fired["run"] += plain_token_run(ws)
        fired["phrase"] += plain_phrase(t)
        fired["lines"] += plain_lines(t)
        fired["leak"] += plain_system_leak(ws)
        fired["turn"] += _OLD_FAKE_TURN.search(t) is not None
        fired["rubric"] += plain_rubric(fold(t))
    for rule, n in fired.items():
        assert 50 <= n <= len(CORPUS) - 50, (rule, n)


@pytest.mark.parametrize("part", range(5))
def test_gated_repetition_rules_find_exactly_what_plain_code_finds(part: int) -> None:
    for t in CORPUS[part::5]:
        w = _w(t)
        assert bool(repeated_ngrams(w)) == plain_ngrams(w.ws), t
        assert bool(phrase_loop(t, w)) == plain_phrase(t), t
        assert bool(repeated_lines(t)) == plain_lines(t), t
        # char_loop also reports symbol runs and in-word loops; the token-run part must agree.
        if not plain_token_run(w.ws):
            found = char_loop(t, w)
            assert "back to back" not in found, t
        else:
            assert char_loop(t, w), t


def test_gated_system_leak_finds_exactly_what_plain_code_finds() -> None:
    for t in CORPUS:
        w = _w(t)
        assert bool(find_system_leak(w, SYSTEM)) == plain_system_leak(w.ws), t


def test_fake_turn_search_cuts_where_the_single_pattern_did() -> None:
    for t in CORPUS:
        m = _OLD_FAKE_TURN.search(t)
        expected = (t, "") if m is None else (t[: m.start()].rstrip(), m.group(0).strip())
        assert cut_fake_turn(t, _w(t).vocab) == expected, t
        assert cut_fake_turn(t) == expected, t


def test_gated_rubric_search_finds_exactly_what_every_pattern_finds() -> None:
    for t in CORPUS:
        low = fold(t)
        assert bool(find_rubric(low, (), _w(t).vocab)) == plain_rubric(low), t
