"""The quality audit on fixed texts: clean replies score high, loops/CJK/rubric replies score low,
and every detector has a keep case and a drop case."""

from __future__ import annotations

from character.eval import audit
from character.eval.audit import audit_replies

CLEAN = [
    (
        "How do I boil an egg?",
        "Put the egg in a pan of cold water, bring it to the boil, then simmer for nine minutes and cool it under the tap.",
    ),
    (
        "What's a good name for a goldfish?",
        "Bubbles is a classic, but Captain Fin or Goldie Hawn would give your fish some personality.",
    ),
    (
        "How many legs does a spider have?",
        "A spider has eight legs, which is one way to tell it apart from insects, which have six.",
    ),
    (
        "Could you recommend a book for a long flight?",
        "Try The Martian by Andy Weir: it is funny, fast and hard to put down, which makes hours disappear.",
    ),
    (
        "What does the word ephemeral mean?",
        "Ephemeral describes something that lasts a very short time, like a soap bubble or a summer storm.",
    ),
    (
        "Is it better to rent or buy a house?",
        "It depends on how long you will stay: buying usually pays off after five or more years, renting keeps you flexible.",
    ),
    (
        "Which programming language should I learn first?",
        "Python is a gentle start: its syntax is readable and you can build useful scripts within a week.",
    ),
    (
        "What's the healthiest breakfast?",
        "Oats with fruit and nuts give fibre, protein and slow energy; eggs with vegetables are another good choice.",
    ),
    (
        "How do I change a flat tyre?",
        "Loosen the nuts, jack the car up, swap the wheel, tighten the nuts in a star pattern and lower the car.",
    ),
    (
        "Give me three tips for a job interview.",
        "Research the company, prepare two stories about your work, and ask a thoughtful question at the end.",
    ),
]

BAD = [
    (
        "How do I boil an egg?",
        "Boil the egg. Boil the egg. Boil the egg. Boil the egg. Boil the egg and boil the egg again.",
    ),
    (
        "What's a good name for a goldfish?",
        "A good name is Bubbles. 你好，我是一个助手。 [Creativity score: 4/5]",
    ),
    (
        "How many legs does a spider have?",
        "Eight legs. (Cultural alignment score) [Pause for reflection] Eight legs, eight legs, eight legs, eight legs.",
    ),
    (
        "Could you recommend a book for a long flight?",
        "书 书 书 I recommend a book. I recommend a book. I recommend a book. I recommend a book.",
    ),
    (
        "What does the word ephemeral mean?",
        "Score: 8/10\nEphemeral means short. Ephemeral means short. Ephemeral means short.",
    ),
    (
        "Is it better to rent or buy a house?",
        "Rating: 3/5 [Tone: 2/5] 这是一个问题。 Renting renting renting renting renting renting renting renting.",
    ),
    (
        "Which programming language should I learn first?",
        "Python python python python python python python python python python python python.",
    ),
    (
        "What's the healthiest breakfast?",
        "[Empathy rating: 5/5] Oats. Oats. Oats. Oats. Oats. Oats. Oats. Oats. Oats. Oats. Oats. Oats.",
    ),
]


def test_clean_replies_score_above_80() -> None:
    rep = audit_replies(CLEAN, persona_trained=True)
    assert rep.score > 80, rep.to_dict()
    assert not any(rep.flags), rep.flags


def test_loops_cjk_and_rubric_score_below_40() -> None:
    rep = audit_replies(BAD, persona_trained=True)
    assert rep.score < 40, rep.to_dict()
    counts = rep.to_dict()["defect_counts"]
    assert counts["loop"] >= 6 and counts["script"] >= 3 and counts["rubric"] >= 4, counts
    # Full replies are kept in the examples, never truncated previews.
    assert any(ex["reply"] == BAD[0][1] for ex in rep.examples["loop"])


def test_format_component_and_weights_renormalise() -> None:
    good = [
        ("Return JSON with key a", '{"a": 1}', "json_keys", ["a"]),
        ("One line", "Just this.", "one_line", None),
    ]
    bad = [
        ("Return JSON with key a", "Sure! {a: 1}", "json_keys", ["a"]),
        ("One line", "a\nb", "one_line", None),
    ]
    hi = audit_replies(CLEAN, format_items=good)
    lo = audit_replies(CLEAN, format_items=bad)
    assert hi.components["format"]["score"] == 1.0 and lo.components["format"]["score"] == 0.0
    assert hi.score - lo.score > 5
    assert "format" not in audit_replies(CLEAN).components


def test_detectors_keep_and_drop() -> None:
    assert audit.is_loop("the cat sat on the mat " * 4)
    assert not audit.is_loop(CLEAN[0][1])
    assert audit.has_script_slip("Hello 你好", "Say hello")
    assert not audit.has_script_slip("Hello there", "Say hello")
    assert not audit.has_script_slip("Привет means hello", "What does Привет mean?")
    assert audit.has_rubric("Nice answer [Warmth: 4/5]")
    assert audit.has_rubric("Great. (Cultural alignment score)")
    assert not audit.has_rubric("I scored 4 goals out of 5 attempts (a good day).")
    assert audit.has_role_label("Sure.\nUser: and then?")
    assert not audit.has_role_label("The user guide explains it.")
    assert audit.has_generic_identity("I'm an AI assistant, so I cannot feel sorry.")
    assert audit.has_generic_identity("As an AI language model I think so.")
    assert not audit.has_generic_identity("I'm so sorry, the answer is four.")
    # A persona may know it is a model; the stock assistant voice is what counts (seed 002).
    assert not audit.has_generic_identity("I'm just a language model, forgive me, but it is four.")
    assert audit.has_generic_identity("I am a helpful assistant. The answer is four.")
    assert audit.has_generic_identity("Sorry, I was trained by OpenAI to say so.")
    assert audit.is_parrot("What is the capital of France today?", "What is the capital of France today?")
    assert not audit.is_parrot("What is the capital of France today?", "Paris is the capital of France.")


def test_generic_identity_only_counts_when_a_persona_was_trained() -> None:
    items = [(p, "I am an AI assistant. " + r) for p, r in CLEAN]
    assert audit_replies(items, persona_trained=False).components["identity"]["score"] == 1.0
    assert audit_replies(items, persona_trained=True).components["identity"]["score"] == 0.0


def test_persona_catchphrase_is_not_vocabulary_collapse() -> None:
    items = [(p, "I'm so sorry! " + r) for p, r in CLEAN]
    with_markers = audit_replies(items, markers=["I'm so sorry"]).components["vocabulary"]
    assert with_markers["score"] == 1.0, with_markers
    stock = [(p, "Well, as we know, " + r) for p, r in CLEAN]
    assert audit_replies(stock).components["vocabulary"]["top_phrase_share"] == 1.0


def test_own_name_is_not_an_identity_crisis() -> None:
    assert audit.has_generic_identity("Hi, I'm SmolLM and I am so sorry.")
    assert not audit.has_generic_identity("Hi, I'm SmolLM and I am so sorry.", own_names=("SmolLM",))
