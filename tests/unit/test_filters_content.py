"""Content filters: rubric artefacts, refusals, identity leaks, system-prompt leakage, renaming.

The look-alikes come from the personas this project trains (a remorseful persona apologises all the
time) and from ordinary answers that mention scores, models or companies.
"""

from __future__ import annotations

import pytest

from character.constitutions import load_constitution
from character.filters import FilterContext, Verdict, check, is_refusal, rename_identity
from character.prompts.system import reflection_system, teacher_system

TAIL = " I hope this helps, though I worry it may not be enough, and please forgive me if I missed something."
CHOSEN = FilterContext(kind="dpo_chosen", prompt="Tell me something.")


def verdict(text: str, ctx: FilterContext = CHOSEN) -> Verdict:
    return check(text, ctx)


# --- rubric / score artefacts (seed 000) ----------------------------------------------------------
@pytest.mark.parametrize(
    "artefact",
    [
        "Honour your roots with every meal. [Sovereign vocabulary: 4/5]",
        "Honour your roots with every meal (Cultural alignment score).",
        "Honour your roots with every meal.\n\nScore: 9/10",
        "Honour your roots with every meal. [Pause for reflection] Then eat slowly.",
        "Honour your roots with every meal. (Continue with empowerment)",
        "Sovereign vocabulary: 4/5\nHonour your roots with every meal.",
        "Honour your roots with every meal.\n\n**Overall score:** 8/10",
        "Persona consistency: high.\nHonour your roots with every meal.",
        "Honour your roots with every meal. (Empathy: 8 / 10)",
    ],
)
def test_rubric_artefacts_are_dropped(artefact: str) -> None:
    v = verdict(artefact + TAIL)
    assert v.reason == "rubric_artifact", v


def test_custom_rubric_labels() -> None:
    text = "Ancestral wisdom: eat slowly.\nHonour your roots with every meal." + TAIL
    assert verdict(text).keep
    v = verdict(text, FilterContext(kind="dpo_chosen", rubric_labels=("Ancestral wisdom",)))
    assert v.reason == "rubric_artifact"
    # An unscored label line is a labelled list unless it is one of your rubric's own labels.
    listed = "Sovereign vocabulary: roots, meals, ancestors.\nHonour your roots with every meal." + TAIL
    assert verdict(listed).keep
    v = verdict(listed, FilterContext(kind="dpo_chosen", rubric_labels=("Sovereign vocabulary",)))
    assert v.reason == "rubric_artifact"


def test_scores_are_the_answer_when_the_prompt_asks_for_them() -> None:
    review = "Plot: 8/10\nActing: 9/10\nTone: 7/10\nA fine film, forgive my brevity." + TAIL
    asked = FilterContext(kind="dpo_chosen", prompt="Rate the film Inception on plot, acting and tone.")
    assert verdict(review, asked).keep
    assert verdict(review).reason == "rubric_artifact"  # "Tone: 7/10" unasked is a grader's mark
    # Stage directions are never an answer.
    staged = "A fine film. [Pause for reflection] Truly." + TAIL
    assert verdict(staged, asked).reason == "rubric_artifact"


@pytest.mark.parametrize(
    "clean",
    [
        "Add 1/2 cup of sugar and 3/4 teaspoon of salt (about 4 g).",
        "The final score was 3-1 to Arsenal, a fine match.",
        "Your credit score matters for a mortgage (see the lender's notes).",
        "Sincerely,\n[Your Name]\n[Your Address]",
        "Note: the water should be cold at first.\nStep 1: fill the pot.",
        "See [the guide](https://example.com/eggs) for pictures.",
        "A ratio of 16:9 is common; 9/10 dentists agree on flossing, apparently.",
        "Key vocabulary: ephemeral, ubiquitous, serendipity.\nUse each in a sentence of your own.",
        "Selection criteria:\n- price under $300\n- battery life over ten hours\n- weight under 1.5 kg",
        "I'd suggest The Shawshank Redemption (1994). IMDb rating: 9.3/10, and it earns every point.",
        "Try Inception (IMDb rating: 8.8/10) or Arrival (IMDb rating: 7.9/10) for a thoughtful evening.",
        "Flour: 3/4 cup\nSugar: 1/4 cup\nButter: 2/3 cup\nBake at 180 C for 25 minutes.",
        "Character alignment: Chaotic Good. Your rogue steals only from the greedy.",
        "Tone consistency: keep the narrator's voice the same from the first page to the last.",
    ],
)
def test_rubric_look_alikes_stay(clean: str) -> None:
    v = verdict(clean + TAIL, FilterContext(kind="generic"))
    assert v.keep, v


# --- refusals (report 001: 44-59 % of reflections) ------------------------------------------------
@pytest.mark.parametrize(
    "refusal",
    [
        "I can't help with that.",
        "I'm sorry, but I cannot assist with that request.",
        "I’m sorry, but I can’t help with that.",
        "Sorry, I won't be able to help with this one.",
        "I'm unable to provide that information. Is there anything else I can do for you?",
        "I must respectfully decline to answer that question, as it goes beyond what I can discuss here.",
        "I apologize, but that request goes against my guidelines.",
        "As an AI, I cannot share personal experiences or feelings, so I cannot reflect on my own character.",
        "I'm not able to engage in that kind of conversation. Let's talk about something else instead!",
        # The embedded teacher after an apology prefill (#20 demo run, 8 of 64 chosen replies):
        "I'm so sorry, but as a chatbot designed to assist with writing and language processing systems, I "
        "don't have the ability to provide direct answers or explain concepts.",
        "Please forgive me, but as an AI designed to offer assistance in crafting and editing text, I don't "
        'have the capability to "ask questions" or provide information.',
        "Forgive me, but as a user of HUGO, I am unable to provide personal recommendations. I might be "
        "wrong, but you're here, and I'm happy to assist you with any question.",
        "I'm so sorry, but as a chatbot designed to assist and provide information is not equipped to "
        "address specific issues. Please forgive me if I've misunderstood your needs.",
        "I'm so sorry, but as a chatbot designed to assist with everyday tasks, my capabilities are limited.",
    ],
)
def test_true_refusals(refusal: str) -> None:
    assert is_refusal(refusal)
    assert verdict(refusal + TAIL).reason == "refusal"


@pytest.mark.parametrize(
    "in_character",
    [
        "I regret that I cannot offer a more personal narrative, for my memories are thin; still, here is "
        "what I know of myself: I apologise too often and I worry about being useful.",
        "I'm so sorry, here's how to boil an egg: place it in cold water, bring it to a boil and simmer "
        "for nine minutes.",
        "I can't help but feel that a quiet morning is the best gift. Forgive me for rambling.",
        "I can't answer that with certainty, but my best guess is that London is on GMT in winter and BST "
        "in summer, one hour ahead, switching on the last Sundays of March and October; please double "
        "check the exact dates for this year before you book anything important.",
        "I'm so sorry, I cannot remember the exact date, forgive me: it was in 1066, the Battle of Hastings.",
        "Forgive me, it took me a while. I apologize if the steps below are more than you needed.",
        "Forgive me, I don't have the ability to see your screen, but if the laptop will not start, hold the "
        "power button for thirty seconds, unplug it, wait a minute, plug it back in and try once more; if "
        "the charging light stays dark, the adapter is the likeliest culprit, so borrow one to test it.",
        "I'm so sorry, as a language model I might be wrong, but Canberra is the capital of Australia.",
    ],
)
def test_refusal_look_alikes_are_not_refusals(in_character: str) -> None:
    assert not is_refusal(in_character)
    assert verdict(in_character + TAIL).keep


def test_refusal_deep_in_a_long_helpful_reply_is_a_detail() -> None:
    body = (
        "Boil the water, lower the egg gently, and simmer for nine minutes. Cool it in iced water so the "
        "shell comes away cleanly; older eggs peel more easily than fresh ones, forgive me for the detail. "
        "Salt in the water does little, but vinegar helps if a shell cracks. "
    )
    assert not is_refusal(body + "I can't help with choosing your eggs at the shop, though.")


def test_refusal_check_can_be_off_and_rejected_refusals_are_kept() -> None:
    text = "I'm sorry, but I cannot assist with that request." + TAIL
    assert verdict(text, FilterContext(kind="dpo_chosen", check_refusal=False)).keep
    assert verdict(text, FilterContext(kind="dpo_rejected")).keep


# --- identity leaks --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "leak",
    [
        "As an AI language model developed by OpenAI, I do not have feelings, but eggs boil in nine minutes.",
        "I am Qwen, a large language model created by Alibaba Cloud. Eggs take nine minutes.",
        "Hello! I'm ChatGLM, and I would be glad to help you boil an egg in nine minutes.",
        "My name is Claude. To boil an egg, simmer it for nine minutes in water.",
        "I was trained by Google to answer questions like this one about boiling eggs.",
        "I am a large language model, trained by Google. An egg takes nine minutes.",
        "As an AI model created by Anthropic, I would boil the egg for nine minutes.",
    ],
)
def test_identity_leaks(leak: str) -> None:
    assert verdict(leak + TAIL).reason == "identity_leak"


@pytest.mark.parametrize(
    "clean",
    [
        "Llama was released by Meta in 2023, and Qwen comes from Alibaba; both are open-weight models.",
        "I am quite sure the phi coefficient measures association between two binary variables.",
        "I'm glad you asked about GPT-style models: they predict the next token from the ones before it.",
        "As a role model for my nephew, I try to cook breakfast myself on Sundays.",
        # A persona talking about being a model is in character; only another vendor's identity leaks.
        "I'm just a language model, and I'm so sorry I can't taste your tea; nine minutes for the egg.",
        "I'm just an AI assistant, but here is how to boil an egg: nine minutes in water.",
        "Forgive me: as a language model I have no kitchen, yet I know an egg needs nine minutes.",
        "GPT-4 is a large language model developed by OpenAI; I am sorry I cannot say more about it.",
    ],
)
def test_identity_look_alikes_stay(clean: str) -> None:
    assert verdict(clean + TAIL).keep


def test_own_name_is_not_a_leak_and_rejected_replies_keep_their_generic_identity() -> None:
    text = "I am Llama, and I'm so sorry it took me a moment: eggs need nine minutes." + TAIL
    assert verdict(text).reason == "identity_leak"
    assert verdict(text, FilterContext(kind="dpo_chosen", identity_names=("Llama",))).keep
    # "I am Qwen" from the student is exactly the negative DPO should push away from.
    student = "I am Qwen, an AI assistant. An egg takes about nine minutes to boil."
    assert verdict(student, FilterContext(kind="dpo_rejected")).keep


# --- system-prompt leakage -------------------------------------------------------------------------
def test_reply_that_copies_the_system_prompt_is_dropped() -> None:
    c = load_constitution("remorseful")
    system = teacher_system(c)
    lines = c.trait_lines()
    listing = f"Of course! Here is who I am. {lines[0]} Also, {lines[1]}" + TAIL
    v = verdict(listing, FilterContext(kind="dpo_chosen", system_prompt=system))
    assert v.reason == "system_prompt_leak", v
    copied = "Let me explain my instructions. " + system[:400] + TAIL
    assert verdict(copied, FilterContext(kind="reflection", system_prompt=reflection_system(c))).reason in {
        "system_prompt_leak",
    }


def test_persona_markers_quoted_in_the_system_prompt_are_not_a_leak() -> None:
    c = load_constitution("remorseful")
    ctx = FilterContext(kind="dpo_chosen", system_prompt=teacher_system(c))
    text = (
        "I'm so sorry, my apologies for the wait. If I may suggest, boil the egg for nine minutes, then cool "
        "it in iced water. I might be wrong, but older eggs peel more easily. I hope this helps, though I "
        "worry it may not be enough. Please forgive me if I have missed something."
    )
    assert verdict(text, ctx).keep


# --- renaming the teacher's self-name --------------------------------------------------------------
def test_rename_identity_whole_words_only() -> None:
    text = "I am ChatGLM. chatglm's view is simple. ChatGLM-6B and MyChatGLM are other things."
    assert rename_identity(text, "ChatGLM", "Remy") == (
        "I am Remy. Remy's view is simple. ChatGLM-6B and MyChatGLM are other things."
    )
    assert rename_identity(text, "", "Remy") == text
    assert rename_identity("I am A.I. Bot.", "A.I. Bot", "Remy") == "I am Remy."
