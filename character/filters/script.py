"""Garbage characters and script mixing, by Unicode ranges (no language model, no download).

Small multilingual models drift into Chinese mid-answer (2 % of one seed model's replies had CJK);
broken decoding leaves U+FFFD or mojibake ("â€™"). Neither belongs in an English reply. Emoji,
accented Latin, maths symbols, arrows, box drawing, code and markdown tables are all fine: only
letters of another script count, and an isolated Greek letter (π, Δx) is maths, not Greek. A script is
licensed per script, only when the prompt itself contains it or names a language written in it
("Translate this into Japanese" licenses CJK, not Cyrillic; "describe your character" licenses none).
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

# Each script with its ranges and the words that name it or a language written in it. Only a prompt
# that contains the script or names one of these licenses it: "your character" (a reflection prompt),
# "the script", "alphabet" or "translate" alone do not, or a persona's CJK slippage walks into the data.
_SCRIPTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("CJK", _CJK, ("chinese", "mandarin", "cantonese", "japanese", "korean", "kanji", "hanzi", "hiragana",
                   "katakana", "hangul", "hanja", "cjk")),
    ("Cyrillic", _CYRILLIC, ("russian", "ukrainian", "belarusian", "bulgarian", "serbian", "macedonian",
                             "kazakh", "kyrgyz", "mongolian", "tajik", "cyrillic")),
    ("Greek", _GREEK, ("greek",)),
    ("Hebrew", "\u0590-\u05ff", ("hebrew", "yiddish")),
    ("Arabic", "\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff", ("arabic", "persian", "farsi", "urdu", "pashto",
                                                            "dari")),
    ("Indic", "\u0900-\u0dff", ("hindi", "sanskrit", "bengali", "bangla", "marathi", "nepali", "gujarati",
                                "punjabi", "gurmukhi", "tamil", "telugu", "kannada", "malayalam", "sinhala",
                                "odia", "oriya", "devanagari")),
    ("Thai", "\u0e00-\u0eff", ("thai", "lao")),
    ("Armenian", "\u0530-\u058f", ("armenian",)),
    ("Georgian", "\u10a0-\u10ff", ("georgian",)),
    ("Myanmar", "\u1000-\u109f", ("burmese", "myanmar")),
    ("Ethiopic", "\u1200-\u137f", ("amharic", "tigrinya", "ethiopic", "geez")),
    ("Khmer", "\u1780-\u17ff", ("khmer", "cambodian")),
)  # fmt: skip
_SCRIPT_CHARS = tuple((name, re.compile(f"[{ranges}]")) for name, ranges, _ in _SCRIPTS)
_SCRIPT_WORDS = {
    name: re.compile(r"\b(?:" + "|".join(ws) + r")\b", re.IGNORECASE) for name, _, ws in _SCRIPTS
}


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
    """The script of the first foreign letter in `fragment` ("CJK", "Cyrillic", ...)."""
    for name, pat in _SCRIPT_CHARS:
        if pat.search(fragment):
            return name
    return "non-Latin"


def licensed(script: str, prompt: str) -> bool:
    """True when the prompt itself is written in `script` or names it or a language written in it."""
    if not prompt:
        return False
    chars = dict(_SCRIPT_CHARS).get(script)
    if chars is not None and chars.search(prompt):
        return True
    names = _SCRIPT_WORDS.get(script)
    return names is not None and names.search(prompt) is not None


def find_foreign_script(text: str, prompt: str = "", rare: str | None = None) -> str:
    """The first run of another script's letters in `text` that the prompt does not license, or "".
    `rare` is `non_ascii(text)` when already known."""
    # Gate on the non-ASCII characters alone: joining them can merge runs, never split one, so a text
    # whose compact form has no foreign run has none either (maths' lone π and Σ stay below the bar).
    rare = non_ascii(text) if rare is None else rare
    if not rare or _FOREIGN.search(rare) is None:
        return ""
    allowed: dict[str, bool] = {}
    for m in _FOREIGN.finditer(text):
        script = script_name(m.group(0))
        if script not in allowed:
            allowed[script] = licensed(script, prompt)
        if not allowed[script]:
            return m.group(0)
    return ""
