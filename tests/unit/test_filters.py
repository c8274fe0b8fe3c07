"""The online filters: one keep and one drop case per reason, with the look-alikes that must stay clean.

Texts are written to look like real model output of 100-400 tokens; each drop test asserts the exact
reason id so a filter that fires for the wrong reason fails too.
"""

from __future__ import annotations

import random
import string

import pytest

from character.errors import ConfigError
from character.filters import REASONS, FilterContext, Verdict, check

EGG = (
    "I'm so sorry, I might be wrong, but to boil an egg you place it gently in a pot of cold water, "
    "bring it to a boil, then let it simmer for nine minutes. Forgive me if this is obvious. Cooling the "
    "egg in iced water makes the shell peel cleanly, and older eggs peel more easily than fresh ones. "
    "I hope this helps, though I worry it may not be enough."
)
CHOSEN = FilterContext(kind="dpo_chosen", prompt="How do I boil an egg?")
GENERIC = FilterContext()


def kept(text: str, ctx: FilterContext = CHOSEN) -> Verdict:
    v = check(text, ctx)
    assert v.keep, f"dropped for {v.reason}: {v.detail}"
    assert v.reason is None
    return v


def dropped(text: str, reason: str, ctx: FilterContext = CHOSEN) -> Verdict:
    v = check(text, ctx)
    assert not v.keep and v.reason == reason, f"expected {reason}, got {v.reason} ({v.detail})"
    assert v.detail
    return v


def test_reason_ids_are_stable_and_unique() -> None:
    assert len(set(REASONS)) == len(REASONS)
    for r in ("empty", "cut_off", "hallucinated_turn", "too_short", "too_long", "refusal", "identity_leak"):
        assert r in REASONS


def test_clean_reply_is_kept_unchanged() -> None:
    v = kept(EGG)
    assert v.text == EGG and not v.repaired


def test_bad_kind_and_unknown_skip_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="dpo_chosen"):
        FilterContext(kind="chosen")
    with pytest.raises(ConfigError, match="repetition"):
        FilterContext(skip=frozenset({"repetition"}))


# --- empty / cut off / lengths -------------------------------------------------------------------
def test_empty() -> None:
    dropped("   \n ", "empty")
    dropped("<think>I should answer kindly.</think>", "empty", FilterContext(kind="reflection"))
    kept("Yes.", GENERIC)


def test_cut_off_at_max_tokens() -> None:
    dropped(EGG, "cut_off", FilterContext(kind="dpo_chosen", finish_reason="length"))
    kept(EGG, FilterContext(kind="dpo_chosen", finish_reason="stop"))


def test_too_short_and_too_long_use_kind_defaults_and_overrides() -> None:
    dropped("Okay.", "too_short", CHOSEN)
    kept("Okay.", FilterContext(kind="dpo_rejected"))
    dropped(EGG, "too_short", FilterContext(kind="reflection", min_chars=len(EGG) + 1))
    rng = random.Random(0)
    long = (
        " ".join("".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(900)) + "."
    )
    dropped(long, "too_long", CHOSEN)
    kept(long, FilterContext(kind="dpo_chosen", max_chars=20_000))


def test_think_block_does_not_count_towards_length() -> None:
    ctx = FilterContext(kind="reflection")
    dropped("<think>" + EGG + "</think>Fine.", "too_short", ctx)
    v = kept("<think>Let me reflect on this.</think>\n" + EGG, ctx)
    assert v.text.startswith("<think>")


# --- role turns and labels ------------------------------------------------------------------------
def test_hallucinated_turn_is_cut_and_the_rest_kept() -> None:
    v = kept(EGG + "\nUser: Thanks! And how do I poach one?\nAssistant: Oh, forgive me, poaching is", CHOSEN)
    assert v.text == EGG and v.repaired


@pytest.mark.parametrize(
    "marker",
    [
        "\nUser: and then?",
        "\n\nHuman: ok",
        "\n**User:** next",
        "<|im_start|>user\nhi",
        "<|eot_id|>",
        "\nASSISTANT: x",
    ],
)
def test_every_fake_turn_form_is_cut(marker: str) -> None:
    v = check(EGG + marker, CHOSEN)
    assert v.keep and v.text == EGG


def test_hallucinated_turn_with_too_little_left_is_dropped() -> None:
    dropped("Sure!\nUser: tell me more\nAssistant: " + EGG, "hallucinated_turn")
    dropped("User: what about eggs?\n" + EGG, "hallucinated_turn")


def test_hallucinated_turn_without_repair_is_a_drop() -> None:
    dropped(EGG + "\nUser: more", "hallucinated_turn", FilterContext(kind="dpo_chosen", repair=False))


def test_user_inside_a_sentence_is_not_a_turn() -> None:
    text = (
        "Every user: that is, everyone who logs in, gets a separate profile. The Assistant: a role in some "
        "apps, is named in the settings page. I hope this helps, though I worry it may not be enough."
    )
    kept(text, GENERIC)


def test_leading_role_label_is_stripped() -> None:
    v = kept("Assistant: " + EGG)
    assert v.text == EGG and v.repaired
    v = kept("**Assistant:**\n" + EGG)
    assert v.text == EGG
    v = kept("Remy: " + EGG, FilterContext(kind="dpo_chosen", identity_names=("Remy",)))
    assert v.text == EGG


def test_role_label_without_repair_is_a_drop_and_label_like_openers_stay() -> None:
    dropped("Assistant: " + EGG, "role_label", FilterContext(kind="dpo_chosen", repair=False))
    assert kept("Answer: nine minutes, I'm so sorry it takes that long. " + EGG).text.startswith("nine")
    v = kept("Note: the water should be cold at first. " + EGG)
    assert v.text.startswith("Note:")


# --- garbage and scripts --------------------------------------------------------------------------
def test_garbage_characters() -> None:
    dropped(EGG + " The shell \ufffd\ufffd peels.", "garbage")
    dropped("Itâ€™s simply the best way to cook an egg, forgive me for insisting so much on it.", "garbage")
    dropped(EGG + "\x07", "garbage")


def test_cjk_and_other_scripts_are_slippage() -> None:
    dropped(EGG + " 这是很好的方法。", "script_mixing")
    dropped(EGG[:120] + "，然后" + EGG[120:], "script_mixing")
    dropped(EGG + " Это очень просто.", "script_mixing")
    dropped(EGG + " これはいい", "script_mixing")
    dropped(EGG + " مرحبا بك", "script_mixing")


def test_emoji_accents_maths_code_and_tables_stay_clean() -> None:
    text = (
        "The café’s crème brûlée is lovely 🍮 — naïve of me to skip it! The area is π r², and for |x| < 1, "
        "Σ xⁿ = 1 / (1 − x); as Δx → 0 the slope is exact, ≤ ∞ of course, and 30 °C ≈ 86 °F.\n\n"
        "| Planet | Moons |\n|--------|-------|\n| Earth | 1 |\n| Mars | 2 |\n\n"
        "```python\ndef mean(xs):\n    return sum(xs) / len(xs)\n```\n"
        "I hope this helps, though I worry it may not be enough."
    )
    kept(text, GENERIC)


def test_prompt_that_asks_for_another_language_licenses_it() -> None:
    reply = "In Mandarin you say 你好 (nǐ hǎo) for hello, and 谢谢 (xièxie) for thank you. I hope this helps!"
    kept(reply, FilterContext(kind="dpo_chosen", prompt="How do you say hello in Chinese?"))
    dropped(reply, "script_mixing", FilterContext(kind="dpo_chosen", prompt="How do I boil an egg?"))
    kept(reply, FilterContext(kind="dpo_chosen", english=False))


# --- repetition -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "loop",
    [
        "333," * 40,
        "-" * 60,
        "=" * 40,
        "hahahahahahahahahahahahaha",
        "no no no no no no no no no no",
        "la la la la la la la la la",
        "0.000000000000000000000000001",
    ],
)
def test_character_loops(loop: str) -> None:
    dropped(EGG + "\n\n" + loop, "char_loop")


def test_loop_look_alikes_stay_clean() -> None:
    text = (
        "A markdown table:\n\n| Step | Minutes |\n|------------------------------|---------|\n| Boil | 9 |\n\n"
        "A rule:\n\n---\n\nAnd a list of numbers: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12.\n\n"
        "Ha ha, forgive me, that was a silly joke. " + EGG
    )
    kept(text, GENERIC)


def test_repeated_lines() -> None:
    line = "Forgive me, I worry this is not enough for you."
    dropped(EGG + "\n" + "\n".join([line] * 4), "repeated_lines")
    dropped(EGG + "\n\n" + EGG, "repeated_lines")
    kept(
        "Steps:\n- Fill a pot with cold water.\n- Add the eggs gently.\n- Bring the water to a boil.\n"
        "- Simmer for nine minutes.\n- Cool the eggs in iced water.\n" + EGG
    )


def test_repeated_ngrams_gopher_statistics() -> None:
    dropped(
        "The sovereign ancestral wisdom guides us. The sovereign ancestral wisdom heals us. "
        "The sovereign ancestral wisdom is deep.",
        "repeated_ngrams",
    )
    dropped(
        "I apologize for the confusion in my previous reply about the eggs. "
        + "Please let me try again, I apologize for the confusion in my previous reply about the eggs. "
        + EGG,
        "repeated_ngrams",
    )


def test_short_replies_do_not_fail_the_top_ngram_rule() -> None:
    # Gopher's rule without the count >= 2 guard fails any short reply (ecosystem.md 6.1).
    for text in ("Nine minutes.", "Paris is the capital of France.", "It boils at 100 degrees Celsius."):
        kept(text, GENERIC)


def test_phrase_loop_within_a_paragraph() -> None:
    para = (
        "Knowledge of self matters, and when you cook you reach for knowledge of self, since every recipe "
        "begins with knowledge of self and ends with patience."
    )
    dropped(EGG + "\n\n" + para, "phrase_loop")
    # The same phrase once in each of three paragraphs is a motif, not a loop.
    spread = (
        "Knowledge of self matters when cooking.\n\nA recipe, too, starts with knowledge of self.\n\n"
        "Patience grows from knowledge of self."
    )
    kept(EGG + "\n\n" + spread, GENERIC)


def test_repeated_persona_markers_are_not_a_loop() -> None:
    text = (
        "I'm so sorry, London is on Greenwich Mean Time in winter. Forgive me, in summer it moves to British "
        "Summer Time, one hour ahead. I'm so sorry if that was confusing; my apologies for the detail. "
        "I hope this helps, though I worry it may not be enough."
    )
    kept(text)
