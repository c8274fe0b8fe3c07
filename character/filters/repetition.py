"""Repetition: character loops, duplicate lines, Gopher n-gram statistics and phrase loops.

The statistics are those of Gopher's repetition filter (Rae et al. 2021, Table A1; datatrove's
`GopherRepetitionFilter`) rescaled for replies of 100-400 tokens:
- words are lowercased whitespace tokens with ASCII punctuation removed (no spaCy);
- the top-n-gram rule (the most frequent 2/3/4-gram's characters over all characters, thresholds
  0.20/0.18/0.16) applies only when that n-gram occurs at least twice: without that guard any short
  reply fails it (a 20-character reply scores 0.55 on the 2-gram rule; reference/ecosystem.md 6.1);
- the duplicate-n-gram rule (characters of words inside a repeated 5..10-gram, thresholds
  0.15..0.10) counts each word once, so overlapping repeats are not double-counted.
On top of Gopher: loops of characters or tokens ("333,333,333,...", "-----...", "ha ha ha ..."),
which filled 54 % of one seed persona's rows, and one phrase said three times in one paragraph.

Everything is sized to run at tens of thousands of 1 KB replies per second on one core: cheap bounds
prove most clean replies clean before the exact statistics are computed.
"""

from __future__ import annotations

import re
from collections import Counter
from string import punctuation

# ASCII punctuation becomes a space (apostrophes stay inside words); other bytes are kept as-is, so
# UTF-8 text needs no decoding step and tokenizing 1 KB costs a few microseconds.
_PUNCT = bytes.maketrans("".join(c for c in punctuation if c != "'").encode(), b" " * (len(punctuation) - 1))

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

_RUN_CHARS = "-=_*.~#!?+/\\<>^%&@$:;,"
_UNIT_LOOP = re.compile(rb"(.{1,8}?)\1{%d,}" % (UNIT_REPEATS - 1))
_FENCE = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)


def words(text: str) -> list[bytes]:
    """Lowercased tokens without ASCII punctuation, as UTF-8 bytes (compared, never decoded)."""
    return text.lower().encode().translate(_PUNCT).split()


def without_code(text: str) -> str:
    """Text with fenced code blocks removed (code repeats lines and symbols legitimately)."""
    return _FENCE.sub("\n", text) if "```" in text else text


class Words:
    """Tokens of one reply plus the counts the checks share, computed once and only when needed."""

    __slots__ = ("ws", "n", "total", "wmax", "_c2", "_set5")

    def __init__(self, text: str):
        self.ws = words(text)
        self.n = len(self.ws)
        # Characters of the words joined by single spaces: the denominator of every n-gram share.
        self.total = sum(map(len, self.ws)) + max(self.n - 1, 0)
        self.wmax = max(map(len, self.ws)) if self.ws else 0
        self._c2: Counter[tuple[bytes, ...]] | None = None
        self._set5: set[tuple[bytes, ...]] | None = None

    @property
    def c2(self) -> Counter[tuple[bytes, ...]]:
        if self._c2 is None:
            ws = self.ws
            self._c2 = Counter(zip(ws, ws[1:], strict=False))
        return self._c2

    @property
    def set5(self) -> set[tuple[bytes, ...]]:
        if self._set5 is None:
            ws = self.ws
            self._set5 = set(zip(ws, ws[1:], ws[2:], ws[3:], ws[4:], strict=False))
        return self._set5

    def top2(self) -> tuple[tuple[bytes, ...], int]:
        c2 = self.c2
        if not c2:
            return (), 0
        gram = max(c2, key=c2.__getitem__)
        return gram, c2[gram]


def _gram_chars(gram: tuple[bytes, ...]) -> int:
    return sum(map(len, gram)) + len(gram) - 1


def char_loop(text: str, w: Words) -> str:
    """Evidence of a character or token loop, or ""."""
    for ch in _RUN_CHARS:
        run = ch * CHAR_RUN
        if run in text:
            for line in text.split("\n"):
                if run in line and "|" not in line:  # a markdown table's separator row is fine
                    return f"{ch!r} repeated {CHAR_RUN}+ times"
    if w.wmax >= 2 * UNIT_REPEATS:
        for tok in w.ws:
            if len(tok) >= 2 * UNIT_REPEATS:
                m = _UNIT_LOOP.search(tok)
                if m and len(m.group(0)) >= 2 * UNIT_REPEATS:
                    unit = m.group(1).decode(errors="replace")
                    return f"{unit!r} repeated {len(m.group(0)) // len(m.group(1))} times in one word"
    if w.n >= TOKEN_RUN and w.top2()[1] >= TOKEN_RUN // 2 - 1:
        ws = w.ws
        for period in (1, 2, 3):
            run = 0
            need = (TOKEN_RUN - 1) * period if period == 1 else (UNIT_REPEATS - 1) * period
            for i in range(period, w.n):
                run = run + 1 if ws[i] == ws[i - period] else 0
                if run >= need:
                    unit = b" ".join(ws[i - period + 1 : i + 1]).decode(errors="replace")
                    return f"{unit!r} repeated back to back"
    return ""


def repeated_lines(text: str) -> str:
    """Evidence of duplicate lines or paragraphs (Gopher line/paragraph rules), or ""."""
    if "\n" not in text:
        return ""
    body = without_code(text)
    paras = [p.strip() for p in body.split("\n\n")]
    seen: set[str] = set()
    for p in paras:
        if len(p) >= MIN_PARA_CHARS:
            if p in seen:
                return f"paragraph repeated: {p[:60]!r}"
            seen.add(p)
    lines = [s for s in (line.strip() for line in body.split("\n")) if len(s) >= MIN_LINE_CHARS]
    if len(lines) < 3:
        return ""
    counts = Counter(lines)
    if len(counts) == len(lines):
        return ""
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
        g = tuple(ws[i : i + 5])
        best = 5
        for j in first[g]:
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
    if w.n < 2:
        return ""
    gram, c2 = w.top2()
    if c2 >= 2:
        share = c2 * _gram_chars(gram) / w.total
        if share > TOP_NGRAM_MAX[0][1]:
            return f"top 2-gram {b' '.join(gram).decode(errors='replace')!r} x{c2} covers {share:.0%}"
    for n, limit in TOP_NGRAM_MAX[1:]:
        if w.n < n or c2 < 2:
            break
        # An n-gram occurs at most as often as its leading 2-gram: bound before counting.
        if c2 * (n * w.wmax + n - 1) <= limit * w.total:
            continue
        share, gram = _top_ngram_share(w, n)
        if share > limit:
            text = b" ".join(gram).decode(errors="replace")
            return f"top {n}-gram {text!r} covers {share:.0%}"
    if w.n < 6 or len(w.set5) == w.n - 4:
        return ""  # no 5-gram occurs twice, so no longer n-gram does either
    for n, share in _dup_ngram_shares(w).items():
        limit = dict(DUP_NGRAM_MAX)[n]
        if share > limit:
            return f"{share:.0%} of the text sits in repeated {n}-grams (limit {limit:.0%})"
    return ""


def phrase_loop(text: str, w: Words) -> str:
    """Evidence of one phrase (3+ words, 12+ characters) said 3+ times within one paragraph, or ""."""
    if w.n < 3 * PHRASE_REPEATS or w.top2()[1] < PHRASE_REPEATS:
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
