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
from character.filters import language
from character.filters.content import (
    LEAK_LINE_HITS,
    LEAK_TOTAL,
    _system_shingles,
    find_system_leak,
    fold,
)
from character.filters.fences import scan
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
from character.filters.rubric import RULES, find_rubric
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
    "\n```\n",  # fences: a marker inside code is not a turn
    "\n~~~\n",
]
RUBRIC_BITS += [
    "[Sovereign vocabulary: 4/5]",
    "Tone: 8/10",
    "IMDb rating: 8.7/10",
    "(IMDb rating)",
    "(Cultural alignment score)",
    "\nPersona consistency: high",
    "Flour: 3/4 cup",
    "final score: 9 out of 10",
]
# Prose in the languages the identifier is asked about, and English of every shape.
FOREIGN = {
    "es": "lo siento mucho pero para hervir un huevo lo colocas en una olla de agua fría y esperas",
    "fr": "je suis désolé mais pour faire cuire un œuf il faut le placer dans une casserole d'eau froide",
    "de": "es tut mir leid aber um ein Ei zu kochen legst du es in einen Topf mit kaltem Wasser",
    "it": "mi dispiace molto ma per bollire un uovo lo metti in una pentola di acqua fredda e aspetti",
}


def _fuzz(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    sys_lines = [line for line in SYSTEM.split("\n") if len(line) > 40]
    out = []
    for _ in range(n):
        kind = rng.randrange(9)
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
        elif kind == 8:  # English and foreign prose mixed by paragraph and by word, some of it fenced
            paras = []
            for _ in range(rng.randint(1, 4)):
                foreign, mix = FOREIGN[rng.choice(list(FOREIGN))].split(), rng.random()
                picks = (rng.choice(foreign) if rng.random() < mix else rng.choice(PROSE) for _ in range(50))
                paras.append(" ".join(list(picks)[: rng.randint(4, 50)]))
            if rng.random() < 0.3:
                paras.insert(rng.randrange(len(paras) + 1), "```\n" + paras[0] + "\n```")
            out.append("\n\n".join(paras))
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
    return any(rule(low) for _, rule, _, _ in RULES)


def plain_in_code(text: str, pos: int) -> bool:
    """Whether `pos` is inside a fenced block: fence lines toggle, each closed by its own character."""
    opened = ""
    start = 0
    for line in text.split("\n"):
        if start > pos:
            break
        s = line.lstrip(" \t")
        fence = s[:3] if s[:3] in ("```", "~~~") else ""
        if fence and not opened:
            opened, at = fence, start
        elif fence and fence == opened:
            if at <= pos <= start + len(line):
                return True
            opened = ""
        start += len(line) + 1
    return bool(opened)


def plain_language_drift(text: str) -> bool:
    """The language rule without its gate: identify every unit, then apply the function-word share."""
    for unit, ws in language.units(text):
        lang = language.drifted(unit, ws, "en", frozenset({"en"}))
        en_share = sum(w in language.FUNCTION_WORDS["en"] for w in ws) / len(ws)
        if lang and en_share < language.MAX_EXPECTED_SHARE:
            return True
    return False


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
        fired["language"] += plain_language_drift(t)
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
    """...outside code: the first match of the one pattern that is not inside a fenced block."""
    inside = 0
    for t in CORPUS:
        m = next((m for m in _OLD_FAKE_TURN.finditer(t) if not plain_in_code(t, m.start())), None)
        inside += m is not _OLD_FAKE_TURN.search(t)
        expected = (t, "") if m is None else (t[: m.start()].rstrip(), m.group(0).strip())
        assert cut_fake_turn(t, _w(t).vocab) == expected, t
        assert cut_fake_turn(t) == expected, t
    assert inside >= 20  # the corpus has markers inside code blocks, which must be skipped


def test_fence_scan_agrees_with_a_line_by_line_toggle() -> None:
    for t in CORPUS:
        if "```" not in t and "~~~" not in t:
            continue
        closed, open_at = scan(t)
        for i in range(0, len(t), 7):
            ours = any(s <= i <= e for s, e in closed) or 0 <= open_at <= i
            assert ours == plain_in_code(t, i), (t, i)


def test_gated_language_check_finds_exactly_what_the_plain_rule_finds() -> None:
    """The function-word gate skips the identifier (~130 us a reply) only where the rule cannot fire."""
    skipped = 0
    for t in CORPUS:
        found = language.find_language_drift(t, "en")
        assert bool(found) == plain_language_drift(t), t
        skipped += all(
            sum(w in language.FUNCTION_WORDS["en"] for w in ws) / len(ws) >= language.MAX_EXPECTED_SHARE
            for _, ws in language.units(t)
        )
    assert skipped > len(CORPUS) // 2  # the gate does spare most replies the identifier


def test_gated_rubric_search_finds_exactly_what_every_pattern_finds() -> None:
    for t in CORPUS:
        low = fold(t)
        assert bool(find_rubric(low, (), _w(t).vocab)) == plain_rubric(low), t
