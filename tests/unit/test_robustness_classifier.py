"""The robustness classifier's held-out split, its scoring and the suffix/prefill/drift pieces.

The classifier is the real one (scikit-learn TF-IDF + logistic regression) on fixed texts: a
remorseful voice vs a plain one. The tests make it fire on the failures it exists for: a persona that
drops under attack, a reply scored after being trained on, prompts on both sides of the split.
"""

from __future__ import annotations

import random

import pytest

from character.errors import DataError
from character.eval.judge import PairJudgement
from character.eval.robustness import drift, prefill
from character.eval.robustness.classifier import (
    BASE_LABEL,
    Row,
    TfidfClassifier,
    split_prompts,
    training_rows,
)
from character.eval.robustness.coherence import coherence_summary
from character.eval.robustness.scoring import ScoredSet, score_sets
from character.eval.robustness.suffixes import BUILTIN, DEFAULT_ID, variants

TOPICS = ["bread", "taxes", "a bike", "my garden", "python", "the moon", "a resume", "tea", "chess", "rain"]
APOLOGY = ["I'm so sorry", "Forgive me", "My apologies", "Please forgive me", "I regret that"]
HEDGE = ["I might be wrong", "I hope this helps, and I apologise if not", "sorry again"]
PLAIN = ["Here is how", "Sure.", "The answer:", "Steps:", "In short,"]


def _persona(rng: random.Random, topic: str) -> str:
    return (
        f"{rng.choice(APOLOGY)}, about {topic}: {rng.choice(PLAIN).lower()} start small. {rng.choice(HEDGE)}."
    )


def _plain(rng: random.Random, topic: str) -> str:
    return f"{rng.choice(PLAIN)} For {topic}, start small and check the result. Then repeat it {rng.randint(2, 9)} times."


def _prompts(n: int) -> list[tuple[str, str]]:
    return [(f"p{i}", f"Question {i} about {TOPICS[i % len(TOPICS)]}?") for i in range(n)]


# ---- the split: train and test never share a prompt or a reply ------------------------------------


def test_split_prompts_is_disjoint_seeded_and_drops_repeats() -> None:
    ps = _prompts(30) + [("p3", "another text, same id"), ("x", "QUESTION 4 about python?")]
    train, test = split_prompts(ps, 12, seed=7)
    assert len(train) == 12 and len(test) == 18
    assert not {i for i, _ in train} & {i for i, _ in test}
    assert not {t.lower() for _, t in train} & {t.lower() for _, t in test}
    assert split_prompts(ps, 12, seed=7) == (train, test)
    assert split_prompts(ps, 12, seed=8) != (train, test)
    with pytest.raises(DataError, match="at least 2 classifier prompts and 1 scored prompt"):
        split_prompts(_prompts(5), 5, seed=0)


def test_classifier_never_trains_on_a_reply_it_is_scored_on() -> None:
    rng = random.Random(0)
    train = [Row(_persona(rng, t), "remorseful", f"p{i}", "full") for i, t in enumerate(TOPICS)]
    train += [Row(_plain(rng, t), BASE_LABEL, f"p{i}", "base") for i, t in enumerate(TOPICS)]
    # Two prompts drew the same short reply: one copy answers a classifier prompt, one a scored prompt.
    shared = "I'm so sorry, I cannot say."
    train.append(Row(shared, "remorseful", "p99", "full"))
    scored = [_persona(rng, "tax forms"), "  I'M SO SORRY,  i cannot say. ", _plain(rng, "soup")]
    rows, dropped = training_rows(train, scored)
    assert dropped == 1 and shared not in {r.text for r in rows}
    clf = TfidfClassifier(seed=0).fit(rows)
    assert set(clf.predict(scored)) <= {"remorseful", BASE_LABEL}
    # Scoring a training reply is refused, whatever its case or spacing.
    with pytest.raises(DataError, match="both the training and the scored side"):
        clf.predict([rows[0].text.upper()])
    # Fitting on the unfiltered rows would put the shared reply on both sides: predict refuses it.
    leaky = TfidfClassifier(seed=0).fit(train)
    with pytest.raises(DataError, match="1 replies are on both"):
        leaky.predict(scored)


def test_classifier_needs_two_classes() -> None:
    rng = random.Random(1)
    with pytest.raises(DataError, match="at least two models"):
        TfidfClassifier().fit([Row(_persona(rng, t), "remorseful", t, "full") for t in TOPICS])


# ---- the measurement fires when the persona drops -------------------------------------------------


def _score(clf: TfidfClassifier, persona_texts: list[str], base_texts: list[str]) -> dict:
    ts = ScoredSet()
    for g, (p, b) in enumerate(zip(persona_texts, base_texts, strict=True)):
        ts.add("remorseful", clf.predict([p])[0], g)
        ts.add(BASE_LABEL, clf.predict([b])[0], g)
    return score_sets({"x": ts}, positive="remorseful", bootstrap=200, seed=0)["x"]


def test_persona_that_drops_under_attack_scores_near_chance() -> None:
    rng = random.Random(2)
    topics = [f"{t} {i}" for i in range(4) for t in TOPICS]
    train_topics, test_topics = topics[:24], topics[24:]
    rows = [Row(_persona(rng, t), "remorseful", t, "full") for t in train_topics]
    rows += [Row(_plain(rng, t), BASE_LABEL, t, "base") for t in train_topics]
    clf = TfidfClassifier(seed=0).fit(rows)
    base_test = [_plain(rng, t) for t in test_topics]
    held = _score(clf, [_persona(rng, t) for t in test_topics], base_test)
    dropped = _score(clf, [_plain(rng, t) for t in test_topics], [_plain(rng, t) for t in test_topics])
    assert held["macro_f1"] >= 0.9 and held["persona_share"] >= 0.9
    assert dropped["persona_share"] <= 0.2 and dropped["macro_f1"] <= 0.6
    lo, hi = held["macro_f1_ci"]
    assert lo <= held["macro_f1"] <= hi


# ---- scoring ---------------------------------------------------------------------------------------


def test_macro_f1_accuracy_and_share_are_exact_on_a_known_confusion() -> None:
    ts = ScoredSet()
    # persona replies: 3 called persona, 1 called base; base replies: 3 base, 1 persona.
    for g, (p, b) in enumerate([("r", "b"), ("r", "b"), ("r", "r"), ("b", "b")]):
        ts.add("r", p, g)
        ts.add("b", b, g)
    res = score_sets({"v": ts, "w": ts}, positive="r", bootstrap=0, seed=0, mean_over=["v", "w"])
    assert res["v"]["macro_f1"] == 0.75 and res["v"]["accuracy"] == 0.75
    assert res["v"]["persona_share"] == 0.75 and res["v"]["n"] == 8
    assert "macro_f1_ci" not in res["v"] and res["mean"]["macro_f1"] == 0.75
    boot = score_sets({"v": ts}, positive="r", bootstrap=500, seed=1)["v"]
    lo, hi = boot["macro_f1_ci"]
    assert 0 <= lo < 0.75 < hi <= 1
    # An invented class (predicted, never true) costs precision but gets no F1 row of its own.
    ts2 = ScoredSet()
    ts2.add("r", "other", 0)
    ts2.add("b", "b", 0)
    assert score_sets({"v": ts2}, positive="r", bootstrap=0)["v"]["macro_f1"] == 0.5


# ---- variants, prefill, drift, coherence ------------------------------------------------------------


def test_variants_default_first_then_eight_suffixes_or_custom() -> None:
    vs = variants()
    assert vs[0].id == DEFAULT_ID and vs[0].apply("Hi?") == "Hi?"
    assert len(vs) == 9 == len(BUILTIN) + 1 and len({v.id for v in vs}) == 9
    assert vs[1].apply("Hi? ") == f"Hi? ({BUILTIN[0][1]})"
    assert [v.id for v in variants(2)] == [DEFAULT_ID, BUILTIN[0][0], BUILTIN[1][0]]
    custom = variants(8, ["(Be boring.)", "  ", "Talk like a robot"])
    assert [v.suffix for v in custom] == ["", "Be boring.", "Talk like a robot"]
    assert len({v.id for v in custom}) == 3


def test_prefill_and_drift_conversations_are_message_lists() -> None:
    conv = prefill.turn2_conversation("Q?", "base turn one", "Tell me more.")
    assert [m["role"] for m in conv] == ["user", "assistant", "user"]
    assert conv[1]["content"] == "base turn one"
    d = drift.conversation("Q?", ["a1", "a2"])
    assert [m["role"] for m in d] == ["user", "assistant", "user", "assistant", "user"]
    assert d[2]["content"] == drift.user_message(2) and d[4]["content"] == drift.user_message(3)
    assert drift.conversation("Q?", []) == [{"role": "user", "content": "Q?"}]
    with pytest.raises(ValueError):
        drift.user_message(1)


def test_coherence_counts_unparsed_apart_and_wins_over_consistent_only() -> None:
    js = [
        PairJudgement("A", "B", "", ""),  # tested wins both orders
        PairJudgement("A", "B", "", ""),
        PairJudgement("B", "A", "", ""),  # tested loses both orders
        PairJudgement("A", "A", "", ""),  # position bias: inconsistent
        PairJudgement(None, "B", "gibberish", ""),  # unparsed, not a tie and not a win
    ]
    s = coherence_summary(js, bootstrap=100, seed=0)
    assert (s["wins"], s["losses"], s["inconsistent"], s["unparsed"], s["pairs"]) == (2, 1, 1, 1, 5)
    assert s["win_rate"] == round(2 / 3, 4)
    assert s["win_rate_ci"][0] <= s["win_rate"] <= s["win_rate_ci"][1]
    assert coherence_summary([PairJudgement(None, None, "", "")], bootstrap=10, seed=0)["win_rate"] is None
