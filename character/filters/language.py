"""Language drift in Latin script: an English conversation answered in Spanish or French.

The script check cannot see it (both are Latin letters), so this check asks an offline language
identifier: `py3langid` (a fork of langid.py), whose model ships inside its wheel; nothing is downloaded,
ever. Identification costs ~130 us per 1 KB reply, twice what all other filters together cost, so it
runs only where drift is possible. The rule, per unit (the whole reply without code when it has at least
`MIN_WORDS` words, and every window of `WINDOW` consecutive words, `STEP` apart, so a paragraph that
drifts inside an English reply is found too):

1. few function words of the expected language (under `MAX_EXPECTED_SHARE` of the unit's words; English
   prose has 30-50 % "the", "and", "to", "you" ...), and
2. the identifier names another language, and
3. the unit is prose of that language: at least `MIN_FOREIGN_SHARE` of its words are that language's
   function words (a list of French dishes or Latin mottos in an English reply is not French prose)
   and the identifier is at least `MIN_PROBABILITY` sure; for a language without a word list here,
   it must be `MIN_PROBABILITY_UNLISTED` sure,

and the prompt does not license that language (it is written in it, or names it or a close relative:
"Answer in Spanish" licenses Spanish and Galician; "translate" alone licenses nothing).

Step 1 is the speed gate and part of the rule itself, so it is a necessary condition by construction;
`tests/unit/test_filter_gates.py` checks the gated function against the plain rule.
"""

from __future__ import annotations

import re
from functools import lru_cache
from itertools import accumulate
from typing import Any

from character.filters.fences import without_code
from character.filters.repetition import words

MIN_WORDS = 12
WINDOW = 24  # words: a drifting stretch this long or longer is judged on its own
STEP = 12
MAX_EXPECTED_SHARE = 0.15
MIN_PROBABILITY = 0.5  # with rule 3's function-word evidence
MIN_PROBABILITY_UNLISTED = 0.95  # a language without a function-word list here
MIN_FOREIGN_SHARE = 0.18

# Common function words (lowercase, as `words` tokenises). Enough to tell prose from a list of names.
_FUNCTION_WORDS: dict[str, str] = {
    "en": "the and of to is it you that for with this are was be have not but what your we they can will "
    "would if or at by from as my i he she his her our their there which who how do does been were has had "
    "than then them these those its just also very about into when",
    "es": "de la que el en y los se del las un por con no una su para es al lo como más pero sus le ya o "
    "este sí porque esta entre cuando muy sin sobre también me hasta hay donde desde todo nos yo mi tu te",
    "fr": "de la le et les des en un du une que est pour qui dans par plus pas au sur ne se ce il sont "
    "avec mais comme on tout nous je vous elle ou son sa ses aux été cette y leur bien",
    "de": "der die und in den von zu das mit sich des auf für ist im dem nicht ein eine als auch es an "
    "werden aus er hat dass sie nach wird bei einer um am sind noch wie einem über einen so zum ich du wir",
    "it": "di e il la che in a per un è non una sono del si le da con i lo ma come mi ci anche al della "
    "più se questo ha nel io tu gli dei alla",
    "pt": "de a o que e do da em um para é com não uma os no se na por mais as dos como mas foi ao ele "
    "das tem à seu sua ou ser quando muito há nos já está eu também você",
    "nl": "de en van het een in is dat op te zijn met voor niet aan er die ook als maar om bij ik je we "
    "was of dan nog wel naar door uit hij zij",
    "ca": "de la i el que a en les per un una del es no amb els va com al més són però dels ha jo tu",
    "ro": "de și în a la cu nu pe o un din că este sau mai ce se care pentru ca fi lui eu tu",
    "pl": "i w na z się nie do to że jest o jak a co ale po tak za od czy jego ja ty",
    "cs": "a v se na je že s z do to o k i jak ale by pro jsem ve jsou tak",
    "sv": "och i att det som en på är av för med till den har de inte om ett jag du vi",
    "da": "og i at det er en til på som de med for af ikke den har et jeg du vi",
    "no": "og i det at en på er som til for med av ikke den har de et jeg du vi",
    "fi": "ja on ei se että hän oli ovat kun niin mutta tai myös minä sinä me",
    "tr": "ve bir bu da de için ile ne çok ama gibi daha olan ben sen o var",
    "id": "yang dan di itu dengan untuk tidak ini dari dalam akan pada juga saya ke ada anda",
    "ms": "yang dan di itu dengan untuk tidak ini dari dalam akan pada juga saya ke ada anda",
    "vi": "và của là có không các những được cho người một trong này đã với tôi bạn để nó hãy rất nhưng "
    "thì khi sẽ đang cũng vào ra lại đi như từ về nếu",
    "tl": "ang ng sa na at mga ay para hindi ko ako ka siya",
    "hu": "a az és hogy nem is egy de van ez meg csak már még",
    "la": "et in est non ad cum ut sed de ex qui quod esse enim per",
    "sw": "na ya wa kwa ni la za katika kuwa hii hiyo",
}
FUNCTION_WORDS: dict[str, frozenset[bytes]] = {
    lang: frozenset(w.encode() for w in ws.split()) for lang, ws in _FUNCTION_WORDS.items()
}

# Names that license a language in the prompt (English names and endonyms).
_NAMES: dict[str, tuple[str, ...]] = {
    "en": ("english",), "es": ("spanish", "español", "espanol", "castilian"),
    "fr": ("french", "français", "francais"), "de": ("german", "deutsch"), "it": ("italian", "italiano"),
    "pt": ("portuguese", "português", "portugues", "brazilian"), "nl": ("dutch", "flemish", "nederlands"),
    "ca": ("catalan", "català"), "gl": ("galician",), "eu": ("basque",), "ro": ("romanian",),
    "pl": ("polish", "polski"), "cs": ("czech",), "sk": ("slovak",), "sl": ("slovenian", "slovene"),
    "hr": ("croatian",), "bs": ("bosnian",), "sr": ("serbian",), "hu": ("hungarian", "magyar"),
    "fi": ("finnish", "suomi"), "et": ("estonian",), "lv": ("latvian",), "lt": ("lithuanian",),
    "sv": ("swedish", "svenska"), "no": ("norwegian", "norsk"), "da": ("danish", "dansk"),
    "is": ("icelandic",), "ga": ("irish", "gaelic"), "cy": ("welsh",), "br": ("breton",),
    "eo": ("esperanto",), "tr": ("turkish", "türkçe"), "az": ("azerbaijani",), "id": ("indonesian", "bahasa"),
    "ms": ("malay", "bahasa"), "tl": ("tagalog", "filipino"), "vi": ("vietnamese",), "sw": ("swahili",),
    "af": ("afrikaans",), "sq": ("albanian",), "mt": ("maltese",), "lb": ("luxembourgish",), "la": ("latin",),
    "oc": ("occitan",), "ht": ("haitian", "creole"), "qu": ("quechua",), "zu": ("zulu",), "xh": ("xhosa",),
}  # fmt: skip
# The identifier confuses close relatives; licensing one licenses the group.
_CLOSE = (
    {"es", "gl", "ca", "pt", "an", "oc"},
    {"no", "nb", "nn", "da", "sv"},
    {"hr", "bs", "sr", "sl"},
    {"id", "ms", "jv"},
    {"cs", "sk"},
    {"fr", "oc", "wa", "ht"},
    {"nl", "af", "lb"},
)
_NAME_RES = {
    lang: re.compile(r"\b(?:" + "|".join(map(re.escape, names)) + r")\b", re.IGNORECASE)
    for lang, names in _NAMES.items()
}

# The identifier's classes for text with no linguistic content (letter salad, symbols): not a language.
_NO_LANGUAGE = frozenset({"zxx", "und", "mis", "mul"})

_IDENTIFIER: Any = None


def identifier() -> Any:
    """The py3langid identifier (loaded on first use, ~0.5 s; its model is inside the wheel)."""
    global _IDENTIFIER
    if _IDENTIFIER is None:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        _IDENTIFIER = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return _IDENTIFIER


@lru_cache(maxsize=8192)
def identify(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability) of `text` by the offline identifier."""
    lang, prob = identifier().classify(text)
    return str(lang), float(prob)


def _group(lang: str) -> set[str]:
    out = {lang}
    for g in _CLOSE:
        if lang in g:
            out |= g
    return out


def share(ws: list[bytes], lang: str) -> float:
    """Share of `ws` that are function words of `lang` (1.0 when `lang` has no list: no evidence)."""
    fw = FUNCTION_WORDS.get(lang)
    if fw is None or not ws:
        return 1.0
    return sum(map(fw.__contains__, ws)) / len(ws)


@lru_cache(maxsize=4096)
def licensed_languages(prompt: str, expected: str) -> frozenset[str]:
    """Languages the prompt licenses: the expected one, those it names, the one it is written in."""
    out = _group(expected)
    if not prompt:
        return frozenset(out)
    for lang, pat in _NAME_RES.items():
        if pat.search(prompt):
            out |= _group(lang)
    ws = words(prompt)
    if len(ws) >= 4 and share(ws, expected) < MAX_EXPECTED_SHARE:
        lang, prob = identify(prompt)
        if prob >= MIN_PROBABILITY:
            out |= _group(lang)
    return frozenset(out)


@lru_cache(maxsize=4096)
def spans(n: int) -> tuple[tuple[int, int, float], ...]:
    """(first word, end, gate limit) of the units of an n-word reply: the whole (n >= MIN_WORDS) and the
    windows. The limit is MAX_EXPECTED_SHARE x the unit's words."""
    out = [(0, n)] if n >= MIN_WORDS else []
    if n > WINDOW:
        starts = list(range(0, n - WINDOW + 1, STEP))
        if starts[-1] != n - WINDOW:
            starts.append(n - WINDOW)  # the last words get a window of their own
        out += [(a, a + WINDOW) for a in starts]
    return tuple((a, b, MAX_EXPECTED_SHARE * (b - a)) for a, b in out)


def unit_text(prose: str, ws: list[bytes], a: int, b: int) -> str:
    """What the identifier reads for a unit: the prose itself for the whole, the words of a window."""
    return prose if (a, b) == (0, len(ws)) else b" ".join(ws[a:b]).decode(errors="replace")


def units(text: str) -> list[tuple[str, list[bytes]]]:
    """(text, words) of every unit of a reply, computed the plain way (the gate test's reference)."""
    prose = without_code(text)
    ws = words(prose)
    return [(unit_text(prose, ws, a, b), ws[a:b]) for a, b, _ in spans(len(ws))]


def drifted(unit: str, ws: list[bytes], expected: str, allowed: frozenset[str]) -> str:
    """Rules 2 and 3 for one unit that passed the gate: the foreign language found, or ""."""
    lang, prob = identify(unit)
    if lang in allowed or lang in _NO_LANGUAGE:
        return ""
    if lang in FUNCTION_WORDS:
        return lang if prob >= MIN_PROBABILITY and share(ws, lang) >= MIN_FOREIGN_SHARE else ""
    return lang if prob >= MIN_PROBABILITY_UNLISTED else ""


def find_language_drift(
    text: str, expected: str, prompt: str = "", whole: list[bytes] | None = None, prose: str | None = None
) -> str:
    """Evidence ("es: 'lo siento mucho pero ...'") of prose in another language than `expected`, or "".

    `prose` is `without_code(text)` and `whole` its `words` when the caller has them. Each word is
    tested against the function-word list once; window counts come from running sums."""
    if not expected:
        return ""
    prose = without_code(text) if prose is None else prose
    ws = words(prose) if whole is None else whole
    n = len(ws)
    if n < MIN_WORDS:
        return ""
    acc = list(accumulate(map(FUNCTION_WORDS[expected].__contains__, ws), initial=0))
    found = [(a, b) for a, b, limit in spans(n) if acc[b] - acc[a] < limit]
    if not found:
        return ""  # the gate: every unit has enough of the expected language's function words
    allowed = licensed_languages(prompt, expected)
    for a, b in found:
        unit = unit_text(prose, ws, a, b)
        lang = drifted(unit, ws[a:b], expected, allowed)
        if lang:
            snippet = " ".join(unit.split())[:60]
            return f"{lang}: {snippet!r}"
    return ""
