"""Garbage characters and script mixing, by Unicode ranges (no language model, no download).

Small multilingual models drift into Chinese mid-answer (2 % of one seed model's replies had CJK);
broken decoding leaves U+FFFD or mojibake ("â€™"). Neither belongs in an English reply. Emoji,
accented Latin, maths symbols, arrows, box drawing, code and markdown tables are all fine: only
letters of another script count, and an isolated Greek letter (π, Δx) is maths, not Greek. When the
prompt itself is in that script or asks for a language or translation, the reply may use it.
"""

from __future__ import annotations

import re

# Replacement character, C0/C1 controls other than tab/newline/CR, private-use, typical mojibake of
# UTF-8 read as Latin-1/cp1252 ("Ã©" for "é", "â€™" for "’").
_BAD_CHAR = re.compile("[\ufffd\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ue000-\uf8ff]")
_MOJIBAKE = re.compile("Ã[\u0080-\u00bf]|â€[\u0080-\u00bf\u2010-\u203a™œ]")

_ASCII_GARBAGE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

_CJK = (
    "\u2e80-\u2fdf\u3001-\u303f\u3040-\u30ff\u3100-\u312f\u3130-\u318f\u31a0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7af\uf900-\ufaff\uff01-\uff60\uffe0-\uffe6"
)
_OTHER = (  # scripts written with spaces: two letters in a row are a word fragment, not a symbol
    "\u0530-\u058f"  # Armenian
    "\u0590-\u05ff"  # Hebrew
    "\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff"  # Arabic
    "\u0900-\u0dff"  # Indic scripts
    "\u0e00-\u0eff"  # Thai, Lao
    "\u1000-\u109f"  # Myanmar
    "\u10a0-\u10ff"  # Georgian
    "\u1200-\u137f"  # Ethiopic
    "\u1780-\u17ff"  # Khmer
)
_CYRILLIC = "\u0400-\u04ff"
_GREEK = "\u0370-\u03ff"
_FOREIGN = re.compile(f"[{_CJK}]+|[{_OTHER}]{{2,}}|[{_CYRILLIC}]{{2,}}|[{_GREEK}]{{4,}}")

_SCRIPT_NAMES = (
    (re.compile(f"[{_CJK}]"), "CJK"),
    (re.compile(f"[{_CYRILLIC}]"), "Cyrillic"),
    (re.compile(f"[{_GREEK}]"), "Greek"),
    (re.compile("[\u0590-\u05ff]"), "Hebrew"),
    (re.compile("[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff]"), "Arabic"),
)

# A prompt that names a language or asks for translation licenses foreign script in the reply.
_LANGUAGE_REQUEST = re.compile(
    r"translat|chinese|mandarin|cantonese|japanese|korean|russian|ukrainian|arabic|hebrew|greek|hindi|"
    r"sanskrit|thai|bengali|urdu|persian|farsi|kanji|hanzi|hiragana|katakana|hangul|cyrillic|"
    r"alphabet|\bscript\b|\bcharacters?\b|in (?:another|a foreign|other) languages?|how do (?:you|i) say",
    re.IGNORECASE,
)


_ASCII = bytes(range(128))
_NOT_CONTROL = bytes(b for b in range(256) if not (b < 32 and b not in (9, 10, 13)) and b != 127)


def non_ascii(text: str) -> str:
    """Only the non-ASCII characters of `text`, in order (a few, in a typical English reply).

    Both checks below gate on it; `check` computes it once and passes it to both."""
    return "" if text.isascii() else text.encode().translate(None, _ASCII).decode()


def find_garbage(text: str, rare: str | None = None) -> str:
    """The first garbage sequence in `text`, or "". `rare` is `non_ascii(text)` when already known."""
    if text.encode().translate(None, _NOT_CONTROL):  # an ASCII control character
        m = _ASCII_GARBAGE.search(text)
        if m:
            return m.group(0)
    rare = non_ascii(text) if rare is None else rare
    if not rare:
        return ""
    if _BAD_CHAR.search(rare):
        m = _BAD_CHAR.search(text)
        return m.group(0) if m else ""
    if "Ã" in rare or "â€" in rare:
        m = _MOJIBAKE.search(text)
        return m.group(0) if m else ""
    return ""


def script_name(fragment: str) -> str:
    for pat, name in _SCRIPT_NAMES:
        if pat.search(fragment):
            return name
    return "non-Latin"


def find_foreign_script(text: str, prompt: str = "", rare: str | None = None) -> str:
    """The first run of another script's letters in `text` (unless the prompt licenses it), or "".
    `rare` is `non_ascii(text)` when already known."""
    # Gate on the non-ASCII characters alone: joining them can merge runs, never split one, so a text
    # whose compact form has no foreign run has none either (maths' lone π and Σ stay below the bar).
    rare = non_ascii(text) if rare is None else rare
    if not rare or _FOREIGN.search(rare) is None:
        return ""
    m = _FOREIGN.search(text)
    if m is None:
        return ""
    if prompt and (_FOREIGN.search(prompt) or _LANGUAGE_REQUEST.search(prompt)):
        return ""
    return m.group(0)
