"""Repetition: character loops, duplicate lines, Gopher n-gram statistics and phrase loops.

The statistics are those of Gopher's repetition filter (Rae et al. 2021, Table A1; datatrove's
`GopherRepetitionFilter`) rescaled for replies of 100-400 tokens:
- words are lowercased whitespace tokens with ASCII punctuation removed (no spaCy);
- the top-n-gram rule (the most frequent 2/3/4-gram's characters over all characters, thresholds
  0.20/0.18/0.16) applies only when that n-gram occurs at least twice: without that guard any short
  reply fails it (a 20-character reply scores 0.55 on the 2-gram rule; reference/ecosystem.md 6.1);
- the duplicate-n-gram rule (characters of words inside a repeated 5..10-gram, thresholds
  0.15..0.10) counts each word once, so overlapping repeats are not double-counted.
Fenced code is left out of every statistic (`check` hands these rules the prose only). On top of
Gopher: loops of characters or tokens ("333,333,333,...", "-----...", "ha ha ha ..."),
which filled 54 % of one seed persona's rows, and one phrase said three times in one paragraph.

Everything is sized for about 12,000 1 KB replies per second on one core, every check included (report 007). One 2-gram
count per reply (`Words.c2`) feeds every rule, and cheap necessary conditions prove most clean replies
clean before an exact statistic is computed: a repeated 5-gram needs four repeated 2-grams that chain
(`has_chain`), a duplicated paragraph needs a duplicated line, a 24-symbol run needs 24 symbol bytes in
a row. Each gate only skips work that could not have found anything; `tests/unit/test_filter_gates.py`
checks the gated rules against plain reference code on fuzzed text.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from itertools import compress
from string import punctuation

from character.filters.fences import without_code as _without_fences

# ASCII punctuation becomes a space (apostrophes stay inside words); other bytes are kept as-is, so
# UTF-8 text needs no decoding step and tokenizing 1 KB costs a few microseconds.
_PUNCT = bytes.maketrans("".join(c for c in punctuation if c != "'").encode(), b" " * (len(punctuation) - 1))

_SPACES = b" \t\n\r\x0b\x0c"  # what bytes.split() splits on

TOP_NGRAM_MAX = ((2, 0.20), (3, 0.18), (4, 0.16))
DUP_NGRAM_MAX = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))
DUP_LINE_FRAC = 0.3  # share of (long enough) lines that repeat an earlier line
DUP_LINE_CHAR_FRAC = 0.2  # share of line characters in repeated lines
MIN_LINE_CHARS = 10  # shorter lines ("}", "---", "Yes.") may repeat freely
LINE_REPEATS_MAX = 2  # a line of 20+ characters said 3 times is a loop whatever the share
MIN_PARA_CHARS = 30  # a paragraph of this length said twice is a loop
CHAR_RUN = 24  # one symbol 24 times in a row ("------------------------") outside a table
UNIT_REPEATS = 6  # a 1-8 character unit repeated this often inside one token ("hahahahahaha")
TOKEN_RUN = 8  # the same token (or a 2-3 token unit) this many times in a row
PHRASE_REPEATS = 3  # one phrase of 3+ words (12+ characters) this often within one paragraph
PHRASE_MIN_CHARS = 12

# r2 * (wmax + 1) below this share of the characters rules out every duplicate-n-gram limit; slightly
# under 0.8 * the smallest limit, so rounding can only make the gate check more, never less.
_DUP_GATE = 0.8 * min(limit for _, limit in DUP_NGRAM_MAX) - 1e-3

LONG_TOKEN = 16  # words this long are checked for an inner loop ("hahahahahahahaha")
# 24+ symbols in a row; kept only when one or two distinct symbols loop, outside a table row.
_SYMBOL_RUN = re.compile(rf"[-=_*.~#!?+/\\<>^%&@$:;,]{{{CHAR_RUN},}}")
# Each loop symbol's byte becomes 1, every other byte 0: a run of CHAR_RUN symbols in the text is exactly
# a run of CHAR_RUN one-bytes here, found by a substring test (no regex over prose punctuation).
_SYMBOL_FLAGS = bytes(int(chr(b) in "-=_*.~#!?+/\\<>^%&@$:;,") for b in range(256))
_SYMBOL_RUN_FLAGS = b"\x01" * CHAR_RUN
_UNIT_LOOP = re.compile(rb"(.{1,8}?)\1{%d,}" % (UNIT_REPEATS - 1))


def words(text: str, *, lowered: bool = False) -> list[bytes]:
    """Lowercased tokens without ASCII punctuation, as UTF-8 bytes (compared, never decoded)."""
    return (text if lowered else text.lower()).encode().translate(_PUNCT).split()


def without_code(text: str) -> str:
    """Text with fenced code blocks removed: code repeats lines, n-grams and symbols legitimately, so
    no repetition statistic counts it (`character.filters.fences`)."""
    if "```" not in text and "~~~" not in text:
        return text
    return _without_fences(text)


class Words:
    """Tokens of one reply plus the counts the checks share, computed once and only when needed.

    The 2-gram counter `c2` is built once, eagerly: it is the most useful single statistic (repeats,
    the top 2-gram, which 2-grams repeat) and costs about as much as the set it replaces. With r2 the
    number of 2-gram occurrences that repeat an earlier one, no 2-gram occurs more than r2 + 1 times.
    """

    __slots__ = ("ws", "n", "total", "c2", "r2", "_wmax", "_top2", "_set5", "_vocab")

    def __init__(self, text: str, *, lowered: bool = False):
        squeezed = (text if lowered else text.lower()).encode().translate(_PUNCT)
        ws = self.ws = squeezed.split()
        self.n = len(ws)
        # Characters of the words joined by single spaces: the denominator of every n-gram share.
        self.total = len(squeezed.translate(None, _SPACES)) + self.n - 1 if ws else 0
        self.c2: Counter[tuple[bytes, ...]] = Counter(zip(ws, ws[1:], strict=False))
        self.r2 = max(self.n - 1, 0) - len(self.c2)
        self._wmax = -1
        self._top2 = -1
        self._set5: set[tuple[bytes, ...]] | None = None
        self._vocab: frozenset[bytes] | None = None

    @property
    def vocab(self) -> frozenset[bytes]:
        """The distinct words: whole-word gates for the content patterns."""
        if self._vocab is None:
            self._vocab = frozenset(self.ws)
        return self._vocab

    @property
    def wmax(self) -> int:
        """Length of the longest word."""
        if self._wmax < 0:
            self._wmax = len(max(self.ws, key=len)) if self.ws else 0
        return self._wmax

    @property
    def top2_bound(self) -> int:
        """An upper bound on the most frequent 2-gram's count (exact once `top2` was asked for)."""
        return self._top2 if self._top2 >= 0 else (self.r2 + 1 if self.n > 1 else 0)

    @property
    def top2(self) -> int:
        """How often the most frequent 2-gram occurs (0 for fewer than two words)."""
        if self._top2 < 0:
            self._top2 = 1 if self.r2 == 0 and self.n > 1 else max(self.c2.values(), default=0)
        return self._top2

    def top2_gram(self) -> tuple[bytes, ...]:
        c2 = self.c2
        return max(c2, key=c2.__getitem__) if c2 else ()

    def grams_at_least(self, count: int) -> list[tuple[bytes, ...]]:
        """The 2-grams that occur `count` times or more."""
        return list(compress(self.c2, map((count - 1).__lt__, self.c2.values())))

    @property
    def set5(self) -> set[tuple[bytes, ...]]:
        if self._set5 is None:
            ws = self.ws
            self._set5 = set(zip(ws, ws[1:], ws[2:], ws[3:], ws[4:], strict=False))
        return self._set5


def has_chain(grams: Iterable[tuple[bytes, ...]], links: int) -> bool:
    """True when `links` of these 2-grams chain into one n-gram (n = links + 1): (a, b), (b, c), ...

    A necessary condition that costs a few set operations: an n-gram that occurs twice has all its
    2-grams among the repeated ones; one shared with the system prompt has all of them in both.
    """
    edges = list(grams)
    ends = {b for _, b in edges}
    for _ in range(links - 1):
        if not ends:
            return False
        ends = {b for a, b in edges if a in ends}
    return bool(ends)


def _gram_chars(gram: tuple[bytes, ...]) -> int:
    return sum(map(len, gram)) + len(gram) - 1


def char_loop(text: str, w: Words) -> str:
    """Evidence of a character or token loop, or ""."""
    m = _SYMBOL_RUN.search(text) if _SYMBOL_RUN_FLAGS in text.encode().translate(_SYMBOL_FLAGS) else None
    while m is not None:
        run = m.group(0)
        line_start = text.rfind("\n", 0, m.start()) + 1
        line_end = text.find("\n", m.end())
        in_table = "|" in text[line_start : line_end if line_end >= 0 else len(text)]
        if not in_table and len(set(run)) <= 2:  # "-----", "=-=-=-": one symbol or two, over and over
            return f"{run[:12]!r}... ({len(run)} symbols in a row)"
        m = _SYMBOL_RUN.search(text, m.end())
    if w.n and w.wmax >= LONG_TOKEN:
        for tok in w.ws:
            # A loop of a unit of at most 8 characters uses at most 8 distinct characters.
            if len(tok) >= LONG_TOKEN and len(set(tok)) <= 8:
                u = _UNIT_LOOP.search(tok)
                if u and len(u.group(0)) >= LONG_TOKEN:
                    unit = u.group(1).decode(errors="replace")
                    return f"{unit!r} repeated {len(u.group(0)) // len(u.group(1))} times in one word"
    # A run of 8 equal tokens repeats the 2-gram (x, x) 7 times (r2 >= 6); 2- and 3-token units more.
    if w.n >= TOKEN_RUN and w.r2 >= TOKEN_RUN - 2 and w.top2 >= UNIT_REPEATS - 1:
        ws = w.ws
        for period in (1, 2, 3):
            streak = 0
            need = (TOKEN_RUN - 1) if period == 1 else (UNIT_REPEATS - 1) * period
            for i in range(period, w.n):
                streak = streak + 1 if ws[i] == ws[i - period] else 0
                if streak >= need:
                    unit = b" ".join(ws[i - period + 1 : i + 1]).decode(errors="replace")
                    return f"{unit!r} repeated back to back"
    return ""


def repeated_lines(text: str) -> str:
    """Evidence of duplicate lines or paragraphs (Gopher line/paragraph rules), or ""."""
    if "\n" not in text:
        return ""
    body = without_code(text)
    # A repeated paragraph repeats its first line, and every line rule needs a repeated line: when the
    # non-blank lines are all distinct there is nothing to find.
    stripped = list(map(str.strip, body.split("\n")))
    blank = stripped.count("")
    if len(set(stripped)) - (blank > 0) == len(stripped) - blank:
        return ""
    if "\n\n" in body:
        paras = [p for p in map(str.strip, body.split("\n\n")) if len(p) >= MIN_PARA_CHARS]
        if len(set(paras)) < len(paras):
            seen: set[str] = set()
            for p in paras:
                if p in seen:
                    return f"paragraph repeated: {p[:60]!r}"
                seen.add(p)
    lines = [s for s in map(str.strip, body.split("\n")) if len(s) >= MIN_LINE_CHARS]
    if len(lines) < 3 or len(set(lines)) == len(lines):
        return ""
    counts = Counter(lines)
    line, top = counts.most_common(1)[0]
    if top > LINE_REPEATS_MAX and len(line) >= 20:
        return f"line said {top} times: {line[:60]!r}"
    dup = len(lines) - len(counts)
    dup_chars = sum(len(s) * (c - 1) for s, c in counts.items() if c > 1)
    all_chars = sum(map(len, lines))
    if dup / len(lines) > DUP_LINE_FRAC:
        return f"{dup}/{len(lines)} lines repeat an earlier line"
    if dup_chars / all_chars > DUP_LINE_CHAR_FRAC:
        return f"{dup_chars / all_chars:.0%} of line characters are repeated lines"
    return ""


def _top_ngram_share(w: Words, n: int) -> tuple[float, tuple[bytes, ...]]:
    ws = w.ws
    counts = Counter(zip(*(ws[i:] for i in range(n)), strict=False))
    gram = max(counts, key=counts.__getitem__)
    c = counts[gram]
    return (c * _gram_chars(gram) / w.total if c >= 2 else 0.0), gram


def _dup_ngram_shares(w: Words) -> dict[int, float]:
    """For n = 5..10: share of characters in words inside a repeat (2nd+) occurrence of an n-gram."""
    ws, n_words = w.ws, w.n
    first: dict[tuple[bytes, ...], list[int]] = {}
    dup_pos: list[int] = []
    for i, g in enumerate(zip(ws, ws[1:], ws[2:], ws[3:], ws[4:], strict=False)):
        if g in first:
            dup_pos.append(i)
            first[g].append(i)
        else:
            first[g] = [i]
    # For each repeat position, the longest n (<= 10) such that the n-gram there occurred earlier.
    longest: list[tuple[int, int]] = []
    for i in dup_pos:
        best = 5
        for j in first[tuple(ws[i : i + 5])]:
            if j >= i:
                break
            k = 5
            while k < 10 and i + k < n_words and ws[i + k] == ws[j + k]:
                k += 1
            best = max(best, k)
        longest.append((i, best))
    shares: dict[int, float] = {}
    for n, _ in DUP_NGRAM_MAX:
        covered: set[int] = set()
        for i, best in longest:
            if best >= n:
                covered.update(range(i, i + n))
        chars = sum(len(ws[k]) + 1 for k in covered)
        shares[n] = chars / w.total if w.total else 0.0
    return shares


def repeated_ngrams(w: Words) -> str:
    """Evidence that the Gopher n-gram statistics fail, or ""."""
    if w.n < 2 or w.r2 == 0:
        return ""  # no 2-gram occurs twice: no n-gram does, every share is zero
    c2 = w.top2_bound
    # Every rule below holds for the bound; count exactly only when the bound is not enough.
    if c2 * (2 * w.wmax + 1) > TOP_NGRAM_MAX[0][1] * w.total or any(
        c2 * (n * w.wmax + n - 1) > limit * w.total for n, limit in TOP_NGRAM_MAX[1:]
    ):
        c2 = w.top2
    # The most frequent 2-gram covers c2 * len(gram) characters; it is at most c2 * (2 * wmax + 1).
    if c2 * (2 * w.wmax + 1) > TOP_NGRAM_MAX[0][1] * w.total:
        gram = w.top2_gram()
        share = c2 * _gram_chars(gram) / w.total
        if share > TOP_NGRAM_MAX[0][1]:
            return f"top 2-gram {b' '.join(gram).decode(errors='replace')!r} x{c2} covers {share:.0%}"
    for n, limit in TOP_NGRAM_MAX[1:]:
        if w.n < n:
            break
        # An n-gram occurs at most as often as its leading 2-gram: bound before counting.
        if c2 * (n * w.wmax + n - 1) <= limit * w.total:
            continue
        share, gram = _top_ngram_share(w, n)
        if share > limit:
            text = b" ".join(gram).decode(errors="replace")
            return f"top {n}-gram {text!r} covers {share:.0%}"
    # Every word inside a repeat of an n-gram (n >= 5) is inside a repeat of a 5-gram, and at least 4 in
    # 5 of those words start a repeated 2-gram: so the rules need r2 >= 0.8 * covered words, and covered
    # words >= the smallest limit * total / (wmax + 1). Below that, or without four repeated 2-grams
    # that chain, no 5-gram occurs twice and no share can pass its limit.
    if w.n < 6 or w.r2 < 4 or w.r2 * (w.wmax + 1) < _DUP_GATE * w.total:
        return ""
    if not has_chain(w.grams_at_least(2), 4) or len(w.set5) == w.n - 4:
        return ""
    for n, share in _dup_ngram_shares(w).items():
        limit = dict(DUP_NGRAM_MAX)[n]
        if share > limit:
            return f"{share:.0%} of the text sits in repeated {n}-grams (limit {limit:.0%})"
    return ""


def phrase_loop(text: str, w: Words) -> str:
    """Evidence of one phrase (3+ words, 12+ characters) said 3+ times within one paragraph, or ""."""
    if w.n < 3 * PHRASE_REPEATS or w.top2_bound < PHRASE_REPEATS or w.top2 < PHRASE_REPEATS:
        return ""
    # A 3-gram said 3 times has both its 2-grams said 3 times, one after the other.
    if not has_chain(w.grams_at_least(PHRASE_REPEATS), 2):
        return ""
    for para in text.split("\n\n"):
        ws = words(para)
        if len(ws) < 3 * PHRASE_REPEATS:
            continue
        counts = Counter(zip(ws, ws[1:], ws[2:], strict=False))
        for gram, c in counts.items():
            if c >= PHRASE_REPEATS and _gram_chars(gram) >= PHRASE_MIN_CHARS:
                phrase = b" ".join(gram).decode(errors="replace")
                return f"{phrase!r} said {c} times in one paragraph"
    return ""
