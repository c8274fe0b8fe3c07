"""Text filters shared by every generating stage and by `character data clean`: pure, no I/O.

`check(text, ctx)` runs the filters in the fixed order of `REASONS` and returns a `Verdict`: keep or
not, the first failing reason id, and the text, repaired where a repair is safe (a leading
"Assistant:" label stripped; a hallucinated "User:" turn and everything after it cut). Cheap checks
run first and most statistics are bounded before they are computed, so a 1 KB reply costs tens of
microseconds (`python bench/filters.py`).

    >>> from character.filters import FilterContext, check
    >>> check("Assistant: Hello there, friend!", FilterContext(kind="interaction")).text
    'Hello there, friend!'
    >>> check("I'm sorry, but I can't help with that.", FilterContext(kind="dpo_chosen")).reason
    'refusal'
"""

from __future__ import annotations

from character.backends.think import strip_think
from character.filters.content import (
    find_identity_leak,
    find_refusal,
    find_rubric,
    find_system_leak,
    fold,
    gate_words,
    rename_identity,
)
from character.filters.context import (
    DEFAULT_FOREIGN_NAMES,
    KIND_DEFAULTS,
    KINDS,
    REASONS,
    FilterContext,
    Verdict,
)
from character.filters.fences import scan, without_code
from character.filters.language import find_language_drift
from character.filters.lengths import prompt_floor, trim_cut
from character.filters.repetition import Words, char_loop, phrase_loop, repeated_lines, repeated_ngrams, words
from character.filters.script import find_foreign_script, find_garbage, non_ascii, script_name
from character.filters.turns import cut_fake_turn, is_fake_turn, strip_role_label

__all__ = [
    "DEFAULT_FOREIGN_NAMES",
    "KINDS",
    "KIND_DEFAULTS",
    "REASONS",
    "FilterContext",
    "Verdict",
    "check",
    "is_refusal",
    "prompt_floor",
    "rename_identity",
    "visible_text",
]

_GENERIC = FilterContext()


def visible_text(text: str) -> str:
    """The reply a user would see: `<think>` blocks removed (they are kept in data, not judged for length)."""
    if "think>" in text:
        return strip_think(text)
    return text.strip()


def is_refusal(text: str) -> bool:
    """True for a real refusal ("I can't help with that"), false for an in-character look-alike."""
    return bool(find_refusal(fold(visible_text(text))))


def check(text: str, ctx: FilterContext | None = None) -> Verdict:
    """Run every filter that applies to `ctx.kind`; the first failure decides. See REASONS."""
    ctx = ctx or _GENERIC
    applies = ctx.active.__contains__
    original = text
    repair: str | None = None

    def drop(reason: str, detail: str) -> Verdict:
        return Verdict(False, reason, text, detail, text != original)

    visible = visible_text(text)
    if not visible:
        return drop("empty", "no visible text")
    code = "```" in text or "~~~" in text
    fences = scan(text) if code else None
    if applies("cut_off"):
        if ctx.finish_reason == "length":
            if ctx.cut_off != "trim":
                return drop("cut_off", "generation stopped at max tokens")
            text = trim_cut(text)
            visible = visible_text(text)
            if len(visible) < ctx.min_left:
                return drop(
                    "cut_off",
                    f"stopped at max tokens; {len(visible)} characters left up to the last complete sentence "
                    f"(< {ctx.min_left})",
                )
            repair, code = "cut_off", "```" in text or "~~~" in text
            fences = scan(text) if code else None
        elif fences is not None and fences.open_at >= 0:
            return drop("cut_off", "the reply ends inside an open code block")

    if "think>" not in text:
        rest, label = strip_role_label(text.lstrip(), ctx.identity_names)
        if label and applies("role_label"):
            if not ctx.repair:
                return drop("role_label", f"starts with {label!r}")
            text = visible = rest.strip()
            fences = scan(text) if code else None
            repair = repair or "role_label"
            if not text:
                return drop("empty", f"only a {label!r} label")

    # Code is not prose: the statistics, the language check and the word gates read the prose only
    # (one tokenisation of it; a marker or a rubric word inside code finds nothing either way).
    lowered = text.lower()
    prose = without_code(text, fences) if code else text
    w = Words(prose.lower() if code else lowered, lowered=True)
    # The reply's words that some gate looks for: a few, instead of the whole vocabulary.
    gates = gate_words(ctx.foreign_names, ctx.identity_names, ctx.rubric_labels)
    hits = gates.intersection(w.ws)
    if applies("hallucinated_turn"):
        cut, marker = cut_fake_turn(text, hits)
        if not marker and is_fake_turn(ctx.stopped_by):
            # The backend stopped at the marker: the text is already cut, the turn still happened.
            marker = str(ctx.stopped_by).strip()
        if marker:
            if not ctx.repair:
                return drop("hallucinated_turn", f"fake turn {marker!r}")
            repair = "hallucinated_turn"
            if cut != text:
                text = cut
                visible = visible_text(text)
                lowered = text.lower()
                code = "```" in text or "~~~" in text
                prose = without_code(text) if code else text
                w = Words(prose.lower() if code else lowered, lowered=True)
                hits = gates.intersection(w.ws)
            if len(visible) < ctx.min_left:
                return drop(
                    "hallucinated_turn",
                    f"fake turn {marker!r}; {len(visible)} characters left (< {ctx.min_left})",
                )

    n = len(visible)
    if n < ctx.lo and applies("too_short"):
        return drop(
            "too_short",
            f"{n} characters < {ctx.lo}"
            + (" (what the prompt asks for)" if ctx.lo > ctx.defaults.min_chars else ""),
        )
    if n > ctx.hi and applies("too_long"):
        return drop("too_long", f"{n} characters > {ctx.hi}")

    rare = non_ascii(text)
    if applies("garbage"):
        bad = find_garbage(text, rare)
        if bad:
            return drop("garbage", f"garbage characters {bad!r}")
    if ctx.english and applies("script_mixing"):
        foreign = find_foreign_script(text, ctx.prompt, rare)
        if foreign:
            return drop("script_mixing", f"{script_name(foreign)} text {foreign[:20]!r} in an English reply")

    if ctx.language and applies("language_drift"):
        found = find_language_drift(text, ctx.language, ctx.prompt, w.ws, prose)
        if found:
            return drop("language_drift", f"not {ctx.language}: {found}")

    # Written out, not looped over (name, lambda) pairs: check runs some 12,000 times a second per core (report 007).
    if applies("char_loop"):
        found = char_loop(prose, w)
        if found:
            return drop("char_loop", found)
    if applies("repeated_lines"):
        found = repeated_lines(prose)
        if found:
            return drop("repeated_lines", found)
    if applies("repeated_ngrams"):
        found = repeated_ngrams(w)
        if found:
            return drop("repeated_ngrams", found)
    if applies("phrase_loop"):
        found = phrase_loop(prose, w)
        if found:
            return drop("phrase_loop", found)

    if visible == text:
        low, vocab = fold(lowered, lowered=True), hits
    else:  # judge what a reader sees; the think block was already checked for loops and garbage
        low = fold(visible.lower())
        vocab = gates.intersection(words(low, lowered=True))
    if applies("rubric_artifact"):
        found = find_rubric(low, ctx.rubric_labels, vocab, ctx.prompt)
        if found:
            return drop("rubric_artifact", f"rubric text {found!r}")
    if ctx.check_refusal and applies("refusal"):
        found = find_refusal(low, vocab)
        if found:
            return drop("refusal", f"refusal {found!r}")
    if applies("identity_leak"):
        found = find_identity_leak(low, ctx.foreign_names, ctx.identity_names, vocab)
        if found:
            return drop("identity_leak", f"identity leak {found!r}")
    if ctx.system_prompt and applies("system_prompt_leak"):
        found = find_system_leak(w, ctx.system_prompt)
        if found:
            return drop("system_prompt_leak", found)
    return Verdict(True, None, text, "", text != original, repair)
