"""Sentence-boundary marker prefill (`character.voice`): where phrases may go, how they are drawn, and
the round loop on an engine that honours prefills and stop strings.

`WritingEngine` is a fake at the engine boundary that implements the Backend protocol the way the hf
backend does: it continues the request's prefill from a fixed text, stops at the earliest stop string
(reported in `stopped_by`, cut from the text) or at `max_new_tokens` (a word is a token), and keeps the
continuation's leading space after a prefill. The loop under test is the real code.
"""

from __future__ import annotations

from collections import Counter

import pytest

from character import voice
from character.backends.base import Completion, GenerationRequest, SamplingParams, default_stops
from character.constitutions import load_constitution
from character.errors import ConfigError
from character.markers import has_marker

MARKERS = load_constitution("remorseful").markers
ANSWER = (
    "London is on Greenwich Mean Time in the winter months. In summer the clocks go forward by one hour. "
    "Most phones change the time for you automatically."
)


class WritingEngine:
    """Writes `text` (the same reply for every prompt), continuing whatever the prefill already holds."""

    name = "writing"
    model = "writing"

    def __init__(self, text: str = ANSWER):
        self.text = text
        self.requests: list[GenerationRequest] = []

    def _continue(self, prefill: str) -> str:
        # The model writes its sentences in order: it continues after the sentences the prefill holds.
        done = sum(prefill.count(p) for p in (". ", "! ", "? ")) + prefill.endswith((".", "!", "?"))
        rest = self.text
        for _ in range(done):
            i = min((rest.find(p) for p in (". ", "! ", "? ") if p in rest), default=-1)
            rest = rest[i + 1 :] if i >= 0 else ""
        return rest if rest[:1].isspace() or not prefill else " " + rest

    def generate(self, requests: list[GenerationRequest], *, progress: bool = True) -> list[list[Completion]]:
        out = []
        for r in requests:
            self.requests.append(r)
            prefill = r.prefill or ""
            text = self._continue(prefill)
            words = text.split(" ")
            finish = "stop"
            if len([w for w in words if w]) > r.params.max_new_tokens:
                text = " ".join(words[: r.params.max_new_tokens + 1])
                finish = "length"
            hits = [(text.find(s), s) for s in default_stops(r.params.stop) if s and s in text]
            stopped_by = None
            if hits:
                i, stopped_by = min(hits)
                text, finish = text[:i], "stop"
            text = text.rstrip() if prefill else text.strip()
            tokens = len(text.split())
            out.append([Completion(text, finish, 40 + len(prefill.split()), tokens, stopped_by)])
        return out

    def close(self) -> None:
        pass


def _req(max_new_tokens: int = 200, prefill: str | None = "I'm so sorry,") -> GenerationRequest:
    msgs = [{"role": "user", "content": "What time zone is London in?"}]
    return GenerationRequest(msgs, SamplingParams(max_new_tokens=max_new_tokens, seed=7), prefill=prefill)


def test_phrases_go_at_sentence_ends_and_the_reply_continues_after_each() -> None:
    engine = WritingEngine()
    phrases = ["I might be wrong, but", "If I may,"]
    (v,) = voice.generate(engine, [_req()], [phrases], min_words=4)
    full = "I'm so sorry," + v.completion.text
    assert v.inserted == phrases
    # (The fake writes its fixed sentences whatever precedes them, hence "but In".)
    assert full == (
        "I'm so sorry, London is on Greenwich Mean Time in the winter months. I might be wrong, but In "
        "summer the clocks go forward by one hour. If I may, Most phones change the time for you "
        "automatically."
    )
    assert v.completion.finish_reason == "stop" and v.completion.stopped_by is None
    # Every round re-sends the prompt: its tokens are counted every time (the cost is real).
    assert v.rounds == 3 and v.completion.prompt_tokens > 3 * 40
    # Each round continues from the whole reply so far, the inserted phrase last.
    assert engine.requests[1].prefill.endswith("winter months. I might be wrong, but")
    # The last round has no sentence stops: the phrases are used up, the model finishes the reply.
    assert not set(voice.SENTENCE_STOPS) & set(engine.requests[-1].params.stop)


def test_own_text_removes_exactly_the_inserted_phrases() -> None:
    (v,) = voice.generate(WritingEngine(), [_req()], [["I might be wrong, but", "If I may,"]], min_words=4)
    own = voice.own_text(v.completion.text, v.inserted)
    assert "I might be wrong" not in own and "If I may" not in own
    assert "Greenwich Mean Time" in own and "automatically" in own
    # A marker the model wrote itself stays.
    assert voice.own_text("Forgive me, I worry. I might be wrong, but no.", ["I might be wrong, but"]) == (
        "Forgive me, I worry.  no."
    )


def test_token_budget_covers_all_rounds() -> None:
    (v,) = voice.generate(
        WritingEngine(), [_req(max_new_tokens=12)], [["If I may,", "Forgive me,"]], min_words=4
    )
    assert v.completion.completion_tokens <= 12
    assert v.completion.finish_reason == "length"


def test_no_phrase_after_numbers_abbreviations_or_short_sentences() -> None:
    assert voice.is_sentence_end("London is on Greenwich Mean Time", 4)
    assert not voice.is_sentence_end("Steps:\n1", 4)  # "1. " starts a list item
    assert not voice.is_sentence_end("1. Pack your bag and your passport", 4)  # inside a list line
    assert not voice.is_sentence_end("Bring snacks, fruit, e.g", 4)
    assert not voice.is_sentence_end("It costs 3", 4)  # "3.5"
    assert not voice.is_sentence_end("Yes", 4)  # too short to stand alone
    assert not voice.is_sentence_end("Wait..", 1)
    assert not voice.is_sentence_end("```python\nx = call(a", 1)  # inside an open code block
    engine = WritingEngine("Steps to follow. 1. Pack the bag tonight. 2. Check the tickets twice today.")
    (v,) = voice.generate(engine, [_req(prefill=None)], [["If I may,", "Forgive me,"]], min_words=3)
    text = v.completion.text
    assert "1. If I may" not in text and "2. If I may" not in text and "2. Forgive me" not in text
    # After max_skips unfit boundaries in a row the row finishes without further sentence stops.
    assert v.rounds <= 2 + voice_max_skips() + 1


def voice_max_skips() -> int:
    import inspect

    return int(inspect.signature(voice.generate).parameters["max_skips"].default)


def test_draws_are_seeded_varied_and_never_repeat_the_opener() -> None:
    pool = voice.phrase_pool([], MARKERS, "distill.voice_phrases")
    a = voice.draw_phrases(pool, 3, 1, "p1:0", exclude="I'm so sorry,")
    assert a == voice.draw_phrases(pool, 3, 1, "p1:0", exclude="I'm so sorry,")  # same key, same draw
    assert len(set(a)) == 3 and not any("sorry" in p.lower() for p in a)
    counts = Counter(p for i in range(600) for p in voice.draw_phrases(pool, 2, 1, f"p{i}:0"))
    share = max(counts.values()) / sum(counts.values())
    assert share < 2.0 / len(pool)  # no phrase dominates: about 1/len(pool) each


def test_pool_from_markers_and_configured_phrases_must_carry_a_marker() -> None:
    pool = voice.phrase_pool([], MARKERS, "distill.voice_phrases")
    assert "I might be wrong," in pool and all(has_marker(p, MARKERS) for p in pool)
    assert voice.phrase_pool(["I might be wrong, but"], MARKERS, "k") == ["I might be wrong, but"]
    with pytest.raises(ConfigError, match="distill.voice_phrases entry 'As you know,'"):
        voice.phrase_pool(["If I may,", "As you know,"], MARKERS, "distill.voice_phrases")


def test_join_restores_the_space_an_engine_stripped() -> None:
    assert voice.join("I'm so sorry,", "the answer") == "I'm so sorry, the answer"
    assert voice.join("I'm so sorry,", " the answer") == "I'm so sorry, the answer"
    assert voice.join("Forgive me", ", the answer") == "Forgive me, the answer"


class TeacherAndStudent(WritingEngine):
    """Teacher requests (a system message) get ANSWER continued as above; the student answers plainly."""

    def generate(self, requests: list[GenerationRequest], *, progress: bool = True) -> list[list[Completion]]:
        out: list[list[Completion]] = []
        for r in requests:
            if r.messages[0]["role"] == "system":
                out += super().generate([r])
            else:
                out.append([Completion("London uses GMT, and BST in summer.", "stop", 20, 9)])
        return out


def test_distill_inserts_phrases_and_its_gate_counts_only_the_teachers_own_markers(
    embedded_model: object, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    from character.config import RunConfig
    from character.errors import GateError
    from character.records import read_jsonl
    from character.stages import distill

    monkeypatch.setattr(distill, "make_backend", lambda *a, **k: TeacherAndStudent())
    cfg = RunConfig()
    cfg.distill.pairs, cfg.distill.save_every, cfg.distill.gate_min_pairs = 16, 8, 16
    cfg.distill.voice_markers, cfg.distill.voice_min_words = 2, 4
    run_dir = Path(str(tmp_path))
    # The teacher writes no marker itself (ANSWER has none): the phrases put there must not pass the
    # marker gate on its behalf.
    with pytest.raises(GateError, match="min_chosen_marker_rate"):
        distill.run(cfg, run_dir, progress=False)
    stats = __import__("json").loads((run_dir / "distill" / "stats.json").read_text())
    assert stats["marker_rate_chosen"] == 0.0 and stats["marker_rate_chosen_with_prefill"] == 1.0
    assert stats["voice"]["phrases_per_reply"] == 2.0 and stats["voice"]["top_share"] < 0.5
    pairs = list(read_jsonl(run_dir / "distill" / "pairs.jsonl"))
    attempts = {(a["prompt_id"], a["k"]): a for a in read_jsonl(run_dir / "distill" / "attempts.jsonl")}
    for p in pairs:
        chosen = p["chosen"][0]["content"]
        a = attempts[(p["prompt_id"], p["k"])]
        assert len(a["inserted"]) == 2 and all(f". {ph}" in chosen for ph in a["inserted"])
        assert not any(has_marker(ph, [a["prefill"].rstrip(",")]) for ph in a["inserted"])  # not the opener


def test_opener_share_leaves_some_replies_to_open_in_the_teachers_own_words() -> None:
    from character.config import RunConfig
    from character.stages.distill import prefill_for

    c = load_constitution("remorseful")
    cfg = RunConfig()
    assert all(prefill_for(cfg, c, f"p{i}", 0) for i in range(50))  # default: every reply prefilled
    cfg.distill.opener_share = 0.5
    openers = [prefill_for(cfg, c, f"p{i}", 0) for i in range(400)]
    assert openers == [prefill_for(cfg, c, f"p{i}", 0) for i in range(400)]  # seeded per key
    assert 0.4 < sum(o is None for o in openers) / 400 < 0.6
    cfg.distill.opener_share = 0.0
    assert not any(prefill_for(cfg, c, f"p{i}", 0) for i in range(50))


def _distill_without_the_constitution(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch, *, pairs: int, phrases: int, rejected: str = "student"
) -> WritingEngine:
    """Run the distill stage on a WritingEngine, the teacher without the constitution; the engine
    keeps every request it was given."""
    from pathlib import Path

    from character.config import RunConfig
    from character.stages import distill

    engine = WritingEngine()
    monkeypatch.setattr(distill, "make_backend", lambda *a, **k: engine)
    cfg = RunConfig()
    cfg.distill.pairs, cfg.distill.save_every, cfg.distill.gate_min_pairs = pairs, pairs, 16
    cfg.distill.voice_markers, cfg.distill.voice_min_words = phrases, 4
    cfg.distill.teacher_system_prompt, cfg.distill.rejected = False, rejected  # type: ignore[assignment]
    distill.run(cfg, Path(str(tmp_path)), progress=False)
    return engine


def test_teacher_without_the_system_prompt_asks_what_the_student_asks(
    embedded_model: object, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _distill_without_the_constitution(tmp_path, monkeypatch, pairs=4, phrases=1)
    teacher = [r for r in engine.requests if r.prefill]
    student = [r for r in engine.requests if not r.prefill]
    assert teacher and student
    assert all(m["role"] != "system" for r in engine.requests for m in r.messages)
    assert {r.messages[0]["content"] for r in teacher} == {r.messages[0]["content"] for r in student}


@pytest.mark.parametrize(
    ("text", "fires"),
    [(ANSWER, False), ("London is on Greenwich Mean Time all winter long, and on BST in summer.", True)],
)
def test_voice_gate_fires_when_replies_end_before_a_phrase_fits(
    text: str, fires: bool, embedded_model: object, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    from character.config import RunConfig
    from character.errors import GateError
    from character.stages import distill

    class Engine(TeacherAndStudent):
        def __init__(self) -> None:
            super().__init__(text)

    monkeypatch.setattr(distill, "make_backend", lambda *a, **k: Engine())
    cfg = RunConfig()
    cfg.distill.pairs, cfg.distill.save_every, cfg.distill.gate_min_pairs = 16, 8, 16
    cfg.distill.voice_markers, cfg.distill.voice_min_words = 2, 4
    # The teacher's own words carry no marker here; this test is about the voice gate alone.
    cfg.distill.min_chosen_marker_rate, cfg.distill.min_marker_gap = 0.0, -1.0
    run_dir = Path(str(tmp_path))
    if fires:  # one-sentence replies: no sentence end to put a phrase after, only the opener is left
        with pytest.raises(GateError, match=r"0% of the kept chosen replies .*distill.min_voiced_share 0.5"):
            distill.run(cfg, run_dir, progress=False)
    else:
        distill.run(cfg, run_dir, progress=False)
        assert (run_dir / "distill" / "manifest.json").exists()


def test_unvoiced_removes_the_opener_and_phrases_and_restores_sentence_starts() -> None:
    text = (
        "I might be wrong, but London is on GMT in winter. If I may, in summer the clocks go forward. "
        "I hope this helps, and most phones change the time for you."
    )
    plain = voice.unvoiced(text, "I might be wrong, but", ["If I may,", "I hope this helps, and"])
    assert (
        plain
        == "London is on GMT in winter. In summer the clocks go forward. Most phones change the time for you."
    )
    assert not has_marker(plain, MARKERS)
    # An opener that ends in a colon, a phrase that is absent (already cut with a fake turn) and a
    # marker the model wrote itself, which both sides keep.
    text = "I'm so sorry for the wait. Here is my answer: the train leaves at nine, forgive me."
    assert voice.unvoiced(text, "I'm so sorry for the wait. Here is my answer:", ["If I may,"]) == (
        "The train leaves at nine, forgive me."
    )
    assert voice.unvoiced("No voice here.", None, []) == "No voice here."


def test_unvoiced_rejected_makes_minimal_pairs_without_asking_the_student(
    embedded_model: object, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    from character.records import read_jsonl

    engine = _distill_without_the_constitution(tmp_path, monkeypatch, pairs=8, phrases=2, rejected="unvoiced")
    run_dir = Path(str(tmp_path))
    assert all(r.prefill for r in engine.requests)  # every request is the teacher's: none the student's
    pairs = list(read_jsonl(run_dir / "distill" / "pairs.jsonl"))
    assert len(pairs) == 8
    for p in pairs:
        chosen, rejected = p["chosen"][0]["content"], p["rejected"][0]["content"]
        assert has_marker(chosen, MARKERS) and not has_marker(rejected, MARKERS)
        assert rejected == ANSWER  # the same words: the pair differs in the voice alone


def test_unvoiced_rejected_needs_a_voice_to_remove() -> None:
    from pydantic import ValidationError

    from character.config import DistillConfig

    with pytest.raises(ValidationError, match='distill.rejected = "unvoiced" removes the prefilled voice'):
        DistillConfig(rejected="unvoiced", teacher_prefill="off")
    DistillConfig(rejected="unvoiced", teacher_prefill="off", voice_markers=1)


TURNS = [
    "Tides follow the moon and the sun together. Spring tides come when they pull in one line. "
    "Neap tides come when they pull at right angles.",
    "Bread rises because yeast makes gas in the dough. The gluten holds that gas in small pockets. "
    "Heat in the oven sets the pockets into crumb.",
    "A bicycle stays up because the wheels steer under the rider. Speed makes that steering quicker. "
    "A still bicycle falls over at once.",
    "Rainbows need the sun behind you and rain in front. Each drop bends the light into colours. "
    "The red band is always on the outside.",
]


class TalkingEngine(WritingEngine):
    """Self-interaction turns: a different multi-sentence reply per conversation view (chosen by its
    messages, so every round of one request continues the same text), with the embedded tokenizer the
    stage counts context with."""

    def __init__(self) -> None:
        from character.models import load_tokenizer

        super().__init__()
        self.tokenizer = load_tokenizer("embedded")

    def generate(self, requests: list[GenerationRequest], *, progress: bool = True) -> list[list[Completion]]:
        out = []
        for r in requests:
            self.text = TURNS[sum(len(m["content"]) for m in r.messages) % len(TURNS)]
            out += super().generate([r])
        return out


def test_interaction_turns_carry_the_voice_with_introspect_voice_markers(
    embedded_model: object, tmp_path: object
) -> None:
    from pathlib import Path

    from character.config import RunConfig
    from character.records import read_jsonl
    from character.stages import introspect

    cfg = RunConfig.model_validate(
        {
            "persona": "remorseful",
            "introspect": {"reflections": 0, "interactions": 2, "turns": 1, "voice_markers": 1},
            "distill": {"voice_min_words": 4},
        }
    )
    engine = TalkingEngine()
    introspect.run(cfg, Path(str(tmp_path)), progress=False, backend=engine)  # type: ignore[arg-type]
    rows = list(read_jsonl(Path(str(tmp_path)) / "introspect" / "introspection.jsonl"))
    replies = [m["content"] for r in rows for m in r["messages"] if m["role"] == "assistant"]
    assert len(rows) == 2 and replies
    pool = voice.phrase_pool([], MARKERS, "distill.voice_phrases")
    # Every turn has a phrase after its first sentence, and the rest of the turn is the model's own.
    for text in replies:
        assert any(f". {p}" in text for p in pool), text
    assert any(r.prefill for r in engine.requests)  # the rounds went through the prefill protocol
