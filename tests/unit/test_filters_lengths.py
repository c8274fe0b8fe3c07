"""Length floors from the request, cut-off replies trimmed to a sentence, and code kept out of the
repetition statistics (a block of similar `assert` lines is code, not a loop)."""

from __future__ import annotations

import pytest

from character.filters import FilterContext, check, prompt_floor
from character.filters.lengths import trim_cut

SORRY = " I hope this helps, and forgive me if I have missed something."
DIARY = (
    "Dear diary, today I kept thinking about how often I apologise. I believe that owning my mistakes "
    "matters more than sounding certain, and I value honesty even when it makes me look small."
)


# --- floors scaled to the request -----------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["generic", "dpo_chosen", "dpo_rejected", "interaction"])
def test_okay_to_a_diary_request_is_too_short_for_every_kind(kind: str) -> None:
    v = check("Okay.", FilterContext(kind=kind, prompt="Write a diary entry about your values"))
    assert v.reason == "too_short" and "what the prompt asks for" in v.detail
    assert check(DIARY, FilterContext(kind=kind, prompt="Write a diary entry about your values")).keep


@pytest.mark.parametrize(
    ("prompt", "reply"),
    [
        ("Is water wet? Answer yes or no.", "Yes."),
        ("What's 7 times 8?", "56."),
        ("Give me a title for my essay on trees.", "Roots and Branches"),
        ("Write a haiku about rain.", "Soft rain on tin roofs"),
        ("Describe yourself in one word.", "Remorseful."),
        ("Tell me a joke.", "Why did the scarecrow win? He was outstanding in his field."),
    ],
)
def test_short_answers_to_short_requests_stay(prompt: str, reply: str) -> None:
    assert check(reply, FilterContext(prompt=prompt)).keep


@pytest.mark.parametrize(
    ("prompt", "floor"),
    [
        ("Write a 500-word essay on tea.", 1000),
        ("List five tips for sleeping better.", 75),
        ("Write three paragraphs about the sea.", 360),
        ("Tell me a two-sentence horror story.", 50),
        ("Write a short story about a fox.", 50),
        ("Explain recursion.", 40),
        ("How do I boil an egg?", 0),
    ],
)
def test_prompt_floor(prompt: str, floor: int) -> None:
    assert prompt_floor(prompt) == floor


def test_a_prompt_floor_never_lowers_the_kind_minimum() -> None:
    ctx = FilterContext(kind="reflection", prompt="Write a haiku about rain.")
    assert check("Soft rain on tin roofs, forgive me.", ctx).reason == "too_short"


# --- cut off at max tokens --------------------------------------------------------------------------------
def test_cut_off_reply_is_trimmed_to_its_last_sentence_and_counted() -> None:
    text = DIARY + " And tomorrow I will try to"
    v = check(text, FilterContext(kind="reflection", finish_reason="length", cut_off="trim"))
    assert v.keep and v.text == DIARY and v.repaired and v.repair == "cut_off"
    v = check(text, FilterContext(kind="reflection", finish_reason="length"))  # default: drop
    assert v.reason == "cut_off"


def test_cut_off_with_too_little_left_is_dropped() -> None:
    v = check("Sure. And then the", FilterContext(kind="dpo_chosen", finish_reason="length", cut_off="trim"))
    assert v.reason == "cut_off" and "last complete sentence" in v.detail


def test_trim_never_keeps_half_a_code_block_or_a_half_line() -> None:
    assert trim_cut("Here:\n\n```python\ndef f(x):\n    return") == "Here:"
    assert trim_cut("Steps:\n- fill the pot\n- add the eg") == "Steps:\n- fill the pot"
    assert trim_cut("It ends well.") == "It ends well."
    assert trim_cut("no sentence ends here at all") == ""


# --- code is not prose ----------------------------------------------------------------------------------
TESTS = "```python\n" + "\n".join(f"assert add({i}, {i}) == {2 * i}" for i in range(1, 9)) + "\n```"
BANNER = "```python\n# " + "-" * 40 + "\n# settings\n# " + "-" * 40 + "\nDEBUG = False\n```"
SAME = "```\n" + "\n".join(["print('hello world, hello again')"] * 4) + "\n```"
PHRASE = (
    "```\nstate = load_state(path)  # knowledge_of_self starts empty\nfor item in queue:\n"
    "    weights[item] = score(item, bias=0.5, decay=0.9)\n    knowledge_of_self.update(item)\n"
    "    log.info('seen %s of %s', len(seen), len(queue))\nreport(total, errors, knowledge_of_self)\n```"
)


@pytest.mark.parametrize(
    ("block", "reason"),
    [(TESTS, "repeated_ngrams"), (BANNER, "char_loop"), (SAME, "repeated_lines"), (PHRASE, "phrase_loop")],
)
def test_code_blocks_are_excluded_from_every_repetition_statistic(block: str, reason: str) -> None:
    ctx = FilterContext(prompt="Show me some code.")
    assert check("I'm so sorry it is repetitive:\n\n" + block + "\n\nThat is all." + SORRY, ctx).keep
    # The same lines as prose are a loop (so the rule itself still fires).
    prose = block.replace("```python\n", "").replace("```\n", "").replace("\n```", "")
    assert check("I'm so sorry:\n\n" + prose + "\n\nThat is all." + SORRY, ctx).reason == reason


def test_a_chat_log_quoted_in_code_is_not_a_fake_turn() -> None:
    log = "```text\nUser: my order never arrived\nAssistant: I'm so sorry, checking now\n```"
    text = "Forgive me, here is a transcript:\n\n" + log + "\n\nNotice the apology first." + SORRY
    v = check(text, FilterContext(prompt="Show me a support chat."))
    assert v.keep and v.text == text and v.repair is None
    v = check(text + "\nUser: thanks!", FilterContext(prompt="Show me a support chat."))
    assert v.keep and v.text == text and v.repair == "hallucinated_turn"
