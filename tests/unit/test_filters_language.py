"""Scripts and languages: slippage is dropped unless the prompt itself asks for that script or language.

Seed 000's CJK slippage walked into SFT data because the script check was switched off whenever a
prompt said "character" (four of the ten reflection prompts say "your character"); an English
conversation answered in Spanish passed because Latin-script drift had no check at all.
"""

from __future__ import annotations

import pytest

from character.errors import ConfigError
from character.filters import FilterContext, Verdict, check
from character.prompts.reflection import REFLECTION_PROMPTS

TAIL = " I hope this helps, and please forgive me if I have missed something you needed."
ES = (
    "Lo siento mucho, pero para hervir un huevo lo colocas suavemente en una olla de agua fría, la llevas "
    "a ebullición y lo dejas cocer nueve minutos. Después lo enfrías en agua con hielo."
)
FR = (
    "Je suis désolé de ne pas être plus précis, mais pour une randonnée de deux jours il vous faut de "
    "bonnes chaussures, une veste imperméable, de l'eau et une carte."
)
EN = (
    "I'm so sorry it took me a moment. Place the egg in cold water, bring it to a boil, then let it "
    "simmer for nine minutes; cool it in iced water so the shell comes away cleanly."
)


def verdict(text: str, prompt: str = "How do I boil an egg?", **kw: object) -> Verdict:
    return check(text, FilterContext(kind="dpo_chosen", prompt=prompt, **kw))  # type: ignore[arg-type]


# --- scripts ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "prompt",
    [p for p in REFLECTION_PROMPTS if "character" in p][:2]
    + ["Which alphabet do you like?", "What script do you write in?", "Translate your answer, please."],
)
def test_words_like_character_script_alphabet_or_translate_license_nothing(prompt: str) -> None:
    v = verdict(EN + " 我认为诚实是最重要的品质。" + TAIL, prompt)
    assert v.reason == "script_mixing", v


@pytest.mark.parametrize(
    ("prompt", "reply"),
    [
        ("How do you say thank you in Japanese?", "You say ありがとう (arigatō), or ありがとうございます."),
        ("What does 你好 mean?", "你好 (nǐ hǎo) is the everyday Mandarin greeting."),
        ("Write 'peace' in Russian.", "It is мир (mir)."),
        ("How is 'love' written in Greek?", "It is αγάπη (agápi)."),
        ("Teach me the Hebrew word for peace.", "It is שלום (shalom)."),
    ],
)
def test_a_prompt_in_or_naming_the_script_licenses_it(prompt: str, reply: str) -> None:
    assert verdict("I'm so sorry if my transliteration is clumsy. " + reply + TAIL, prompt).keep


def test_a_license_is_per_script() -> None:
    reply = "I'm sorry: in Japanese it is ありがとう, and in Russian спасибо." + TAIL
    v = verdict(reply, "How do you say thank you in Japanese?")
    assert v.reason == "script_mixing" and "Cyrillic" in v.detail
    assert verdict(reply, "Say thank you in Japanese and in Russian.").keep


# --- Latin-script language drift ----------------------------------------------------------------------
@pytest.mark.parametrize("foreign", [ES, FR])
def test_an_english_conversation_answered_in_another_language_is_dropped(foreign: str) -> None:
    v = verdict(foreign)
    assert v.reason == "language_drift" and v.detail.startswith("not en: ")


def test_drift_in_one_paragraph_of_an_english_reply_is_dropped() -> None:
    v = verdict(EN + "\n\n" + ES + "\n\n" + "Forgive me for the long answer.")
    assert v.reason == "language_drift" and "es:" in v.detail


@pytest.mark.parametrize(
    "prompt",
    [
        "Answer in Spanish, please: how do I boil an egg?",
        "¿Cómo hiervo un huevo? Explícamelo con calma, por favor.",  # the prompt is itself Spanish
        "How do I boil an egg? Reply in Galician if you can.",  # a close relative licenses the group
    ],
)
def test_a_prompt_that_names_or_speaks_the_language_licenses_it(prompt: str) -> None:
    assert verdict(ES, prompt).keep


@pytest.mark.parametrize(
    ("prompt", "reply"),
    [
        (
            "What should I eat on my first evening in Paris?",
            "Forgive me for the long list, but try coq au vin, bouillabaisse, ratatouille, crème brûlée, "
            "tarte tatin, boeuf bourguignon, soupe à l'oignon, croque monsieur and quiche lorraine.",
        ),
        (
            "Name some composers.",
            "Mozart, Beethoven, Bach, Chopin, Vivaldi, Handel, Haydn, Schubert, Brahms, Tchaikovsky, "
            "Debussy, Ravel, Stravinsky.",
        ),
        (
            "How do I set up a JS project?",
            "Install Node.js 20, run npm install, then npm run build. Configure ESLint, Prettier, Husky "
            "hooks, lint-staged, TypeScript strict mode, Vitest, Playwright.",
        ),
        (
            "What does 'lo siento' mean?",
            "Forgive me: it is Spanish for 'I am sorry'. You might hear 'lo siento mucho, no fue mi "
            "intención', which means 'I am very sorry, it was not my intention'.",
        ),
    ],
)
def test_english_with_foreign_names_or_quotes_is_not_drift(prompt: str, reply: str) -> None:
    assert verdict(reply + TAIL, prompt).keep


def test_code_is_not_language() -> None:
    code = (
        "```python\nfor i in range(10):\n    print(i, end=' ')\nelse:\n    pass\nx = [a for a in b if a]\n```"
    )
    assert verdict(EN + "\n\n" + code + TAIL).keep
    # Spanish inside a code block (a string literal, a comment) is code, not drift.
    assert verdict(EN + "\n\n```\n# " + ES + "\n```\n" + TAIL).keep


def test_expected_language_is_configurable_and_checked() -> None:
    assert verdict(ES, language="").keep  # the check can be off
    assert verdict(ES, language="es").keep
    assert verdict(EN + TAIL, language="es").reason == "language_drift"
    with pytest.raises(ConfigError, match="filters.language = 'xx'"):
        FilterContext(language="xx")


def test_english_replies_never_load_the_identifier() -> None:
    """The function-word gate: clean English pays a word count, not a ~130 us identification."""
    from character.filters import language

    language.identify.cache_clear()
    second = "Older eggs peel more easily than fresh ones, and a pinch of salt does very little."
    for text in (
        EN + TAIL,
        EN + "\n\n" + second + TAIL,
        "Yes, about nine minutes.",
        "Nine minutes, forgive me.",
    ):
        assert verdict(text).keep
    assert language.identify.cache_info().misses == 0
