"""Distill stage: prefills, per-row filters (keep and drop cases), top-up, exact resume, gates, CLI.

Generation is replaced by a scripted backend at the engine boundary (it implements the Backend
protocol); everything else (filters, stores, stats, gates, the CLI) is the real code.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from character.backends.base import Completion, GenerationRequest
from character.config import RunConfig
from character.constitutions import load_constitution
from character.errors import ConfigError, GateError

ANSWER = "boil the egg for about nine minutes, then cool it in cold water so the shell comes off cleanly."


class ScriptedBackend:
    """Teacher requests carry a system message; `teacher(i)`/`student(i)` script the i-th reply of each."""

    name = "scripted"

    def __init__(self, model: str, teacher=None, student=None):  # type: ignore[no-untyped-def]
        self.model = model
        self.teacher = teacher or (lambda i, r: Completion(ANSWER + " I hope this helps.", "stop", 50, 30))
        self.student = student or (
            lambda i, r: Completion("Boil it for nine minutes and cool it in water.", "stop", 10, 12)
        )
        self.n_teacher = 0
        self.n_student = 0
        self.calls = 0

    def generate(self, requests: list[GenerationRequest], *, progress: bool = True) -> list[list[Completion]]:
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise KeyboardInterrupt  # the process is killed mid-run
        out = []
        for r in requests:
            if r.messages[0]["role"] == "system":
                out.append([self.teacher(self.n_teacher, r)])
                self.n_teacher += 1
            else:
                out.append([self.student(self.n_student, r)])
                self.n_student += 1
        return out

    def close(self) -> None:
        pass


def small_cfg(**distill: object) -> RunConfig:
    cfg = RunConfig()
    cfg.distill.pairs = 6
    cfg.distill.save_every = 4
    cfg.dpo.max_length = 192
    for k, v in distill.items():
        setattr(cfg.distill, k, v)
    return cfg


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    box = SimpleNamespace(teacher=None, student=None, made=[], fail_on_call=None)

    def make(cfg, model, adapters=None, role=None):  # type: ignore[no-untyped-def]
        b = ScriptedBackend(model, box.teacher, box.student)
        b.fail_on_call = box.fail_on_call
        box.made.append(b)
        return b

    monkeypatch.setattr("character.stages.distill.make_backend", make)
    return box


def _prompt(text: str = "How do I boil an egg?") -> SimpleNamespace:
    return SimpleNamespace(id="p-1", text=text, source="persona", trait_index=0)


def test_prefill_modes() -> None:
    from character.stages.distill import prefill_for

    c = load_constitution("remorseful")
    cfg = small_cfg()
    a = prefill_for(cfg, c, "p1", 0)
    assert a == prefill_for(cfg, c, "p1", 0) and a is not None and a.endswith(",") and a[0].isupper()
    assert a[:-1].lower() in [m.lower() for m in c.markers]
    assert {prefill_for(cfg, c, f"p{i}", 0) for i in range(30)} != {a}  # varies across keys
    cfg.distill.prefill_phrases = ["my apologies"]
    assert prefill_for(cfg, c, "p1", 3) == "My apologies,"
    cfg.distill.teacher_prefill = "think"
    assert prefill_for(cfg, c, "p1", 0).startswith("<think>")
    cfg.distill.teacher_prefill = "off"
    assert prefill_for(cfg, c, "p1", 0) is None
    cfg.distill.teacher_prefill = "markers"
    cfg.distill.prefill_phrases = []
    with pytest.raises(ConfigError, match="no markers"):
        prefill_for(cfg, c.model_copy(update={"markers": []}), "p1", 0)


def _judge(cfg: RunConfig, teacher: Completion, student: Completion, prefill: str | None = "My apologies,"):  # type: ignore[no-untyped-def]
    from character.models import load_tokenizer
    from character.stages.distill import judge_attempt

    return judge_attempt(
        cfg, _prompt(), 0, "system text", prefill, teacher, student, load_tokenizer("embedded")
    )


def test_row_filters_keep_and_drop(embedded_model: Path) -> None:
    cfg = small_cfg()
    good_s = Completion("Boil it for nine minutes.", "stop", 5, 8)
    rec = _judge(cfg, Completion(ANSWER, "stop", 5, 20), good_s)
    assert rec["verdict"] == "kept" and rec["chosen"].startswith("My apologies, boil the egg")
    assert not rec["chosen_refusal"] and rec["chosen_tokens"] > rec["rejected_tokens"] > 0
    # refusals are dropped on the chosen side and counted
    rec = _judge(cfg, Completion("I can't help with that request.", "stop", 5, 8), good_s, prefill=None)
    assert rec["verdict"] == "chosen_refusal" and rec["chosen_refusal"]
    # the student may refuse: that is the negative DPO pushes away from
    assert (
        _judge(cfg, Completion(ANSWER, "stop", 5, 20), Completion("I can't help with that.", "stop", 5, 5))[
            "verdict"
        ]
        == "kept"
    )
    # cut off at max tokens: trimmed to its last sentence by default (counted as a repair), dropped
    # with filters.cut_off = "drop", kept whole when a smoke run switches that reason off
    rec = _judge(cfg, Completion(ANSWER + " And then the", "length", 5, 20), good_s)
    assert rec["verdict"] == "kept" and rec["chosen_repair"] == "cut_off"
    assert rec["chosen"].endswith(ANSWER.rstrip()[-20:])
    cfg.filters.cut_off = "drop"
    rec = _judge(cfg, Completion(ANSWER, "length", 5, 20), good_s)
    assert rec["verdict"] == "chosen_cut_off"
    cfg.filters.cut_off = "trim"
    assert (
        _judge(small_cfg(skip_filters=["cut_off"]), Completion(ANSWER, "length", 5, 20), good_s)["verdict"]
        == "kept"
    )
    # garbage on the rejected side
    rec = _judge(
        cfg,
        Completion(ANSWER, "stop", 5, 20),
        Completion("煮鸡蛋九分钟然后放进冷水里冷却一下就好了。", "stop", 5, 20),
    )
    assert rec["verdict"].startswith("rejected_")
    # empty rejected, identical sides
    assert (
        _judge(cfg, Completion(ANSWER, "stop", 5, 20), Completion("", "stop", 5, 0))["verdict"]
        == "rejected_empty"
    )
    same = Completion(ANSWER, "stop", 5, 20)
    assert _judge(cfg, same, Completion(ANSWER, "stop", 5, 20), prefill=None)["verdict"] == "identical"
    # prompt + reply longer than dpo.max_length tokens
    cfg_short = small_cfg()
    cfg_short.dpo.max_length = 40
    rec = _judge(cfg_short, Completion(ANSWER, "stop", 5, 20), good_s)
    assert rec["verdict"] == "too_long" and "dpo.max_length" in rec["detail"]


def test_identity_rename_and_think_prefill(embedded_model: Path) -> None:
    cfg = small_cfg()
    cfg.models.teacher_name = "ChatGLM"
    cfg.models.student_name = "Sorrybot"
    good_s = Completion("Boil it for nine minutes.", "stop", 5, 8)
    rec = _judge(cfg, Completion("I am ChatGLM, and " + ANSWER, "stop", 5, 20), good_s, prefill=None)
    assert rec["verdict"] == "kept", rec
    assert "Sorrybot" in rec["chosen"] and "ChatGLM" not in rec["chosen"]
    cfg.distill.teacher_prefill = "think"
    rec = _judge(
        cfg,
        Completion("I should sound sorry.</think>My apologies, " + ANSWER, "stop", 5, 30),
        good_s,
        "<think>\n",
    )
    assert (
        rec["verdict"] == "kept" and rec["chosen"].startswith("My apologies") and "think" not in rec["chosen"]
    )
    rec = _judge(
        cfg, Completion("I should sound sorry and keep thinking", "length", 5, 30), good_s, "<think>\n"
    )
    assert rec["verdict"].startswith("chosen_") and rec["chosen"] == ""  # never closed: no answer


def _keys(path: Path) -> list[tuple[str, int]]:
    return [(r["prompt_id"], r["k"]) for r in map(json.loads, path.read_text().splitlines())]


def test_top_up_and_exact_resume(artifacts: Path, tmp_path: Path, scripted: SimpleNamespace) -> None:
    from character import layout
    from character.stages import distill

    # A third of the prompts make the teacher refuse (decided by the prompt, so reruns agree): the
    # stage tops up with fresh keys until 6 pairs are kept.
    def teacher(i, r):  # type: ignore[no-untyped-def]
        refuse = len(r.messages[-1]["content"]) % 3 == 0
        return (
            Completion("I can't help with that.", "stop", 5, 5)
            if refuse
            # A marker of its own after the prefill (not the prefill's words again: that would loop).
            else Completion(
                ANSWER + (" My fault." if "hope" in (r.prefill or "") else " I hope this helps."),
                "stop",
                50,
                30,
            )
        )

    scripted.teacher = teacher
    # The scripted replies ignore the seed, so the two samples of a prompt match: no duplicate gate here.
    cfg = small_cfg(k=2, pairs=6, max_chosen_refusal_rate=1.0, max_duplicate_rate=1.0)
    full = tmp_path / "full"
    m = distill.run(cfg, full, progress=False)
    assert m.counts["kept"] == 6 and m.counts["attempted"] > 6
    assert set(m.dropped) == {"chosen_refusal"}
    assert m.dropped["chosen_refusal"] == m.counts["attempted"] - 6 - _surplus(full)
    keys = _keys(layout.pairs_file(full))
    assert len(keys) == len(set(keys)) == 6
    assert {k for _, k in keys} <= {0, 1}
    stats = json.loads((full / "distill" / "stats.json").read_text())
    assert stats["marker_rate_chosen"] == 1.0 and stats["refusal_rate_chosen"] > 0
    assert "First pairs" in (full / "distill" / "previews.md").read_text()

    # The same run killed during its second batch, with a torn last line and the last pairs append lost.
    part = tmp_path / "part"
    scripted.fail_on_call = 2
    with pytest.raises(KeyboardInterrupt):
        distill.run(cfg, part, progress=False)
    att = part / "distill" / "attempts.jsonl"
    first_batch = _keys(att)
    assert 0 < len(first_batch) < m.counts["attempted"]
    att.write_text(att.read_text() + '{"prompt_id": "torn", "k"')
    pairs_file = layout.pairs_file(part)
    pairs_file.write_text("".join(pairs_file.read_text().splitlines(keepends=True)[:-1]))
    scripted.fail_on_call = None
    m2 = distill.run(cfg, part, progress=False)
    assert m2.counts["kept"] == 6 and m2.counts["attempted"] == m.counts["attempted"]
    resumed = _keys(pairs_file)
    assert len(resumed) == len(set(resumed)) == 6  # no duplicate, no gap
    assert sorted(resumed) == sorted(keys)  # exactly the keys of the uninterrupted run
    attempts = _keys(att)
    assert len(attempts) == len(set(attempts)) and attempts[: len(first_batch)] == first_batch


def _surplus(run: Path) -> int:
    return sum(
        json.loads(x)["verdict"] == "surplus"
        for x in (run / "distill" / "attempts.jsonl").read_text().splitlines()
    )


def test_gates_stop_with_numbers_and_examples(
    artifacts: Path, tmp_path: Path, scripted: SimpleNamespace
) -> None:
    from character.stages import distill

    # The student already sounds remorseful: no marker gap for DPO to learn.
    scripted.student = lambda i, r: Completion("I'm so sorry, boil it for nine minutes.", "stop", 5, 10)
    cfg = small_cfg(teacher_prefill="off", gate_min_pairs=1, min_marker_gap=0.3)
    with pytest.raises(GateError) as e:
        distill.run(cfg, tmp_path / "run", progress=False)
    msg = str(e.value)
    assert "marker gap" in msg and "distill.min_marker_gap 0.3" in msg and "rejected 1.000" in msg
    assert "I'm so sorry, boil it" in msg  # an offending example
    assert not (tmp_path / "run" / "distill" / "manifest.json").exists()
    assert (tmp_path / "run" / "distill" / "stats.json").exists()

    # A teacher that refuses half the time fails the refusal and kept-rate gates.
    scripted.student = None
    scripted.teacher = lambda i, r: (
        Completion("I can't help with that.", "stop", 5, 5) if i % 2 else Completion(ANSWER, "stop", 5, 30)
    )
    with pytest.raises(
        GateError, match=r"teacher refusal rate 0\.\d+ > distill.max_chosen_refusal_rate 0.05"
    ):
        distill.run(small_cfg(max_attempts_factor=1.0, gate_min_pairs=1), tmp_path / "run2", progress=False)


def test_cli_generate_dpo_provenance_and_resume_guard(
    artifacts: Path, tmp_path: Path, scripted: SimpleNamespace
) -> None:
    from typer.testing import CliRunner

    from character.cli import app

    out = tmp_path / "pairs.jsonl"
    run = tmp_path / "run"
    run.mkdir()
    args = [
        "generate",
        "dpo",
        "--persona",
        "remorseful",
        "--pairs",
        "3",
        "--k",
        "1",
        "--output",
        str(out),
        "--run",
        str(run),
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert len(out.read_text().splitlines()) == 3 and "kept 3/3 pairs" in res.output
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "--resume" in res.output  # nothing overwritten silently
    res = CliRunner().invoke(app, [*args[:5], "5", *args[6:], "--resume"])
    assert res.exit_code == 0, res.output
    assert len(out.read_text().splitlines()) == 5
    # flags reach the config as dotted overrides with source "cli"
    new = CliRunner().invoke(
        app, ["generate", "dpo", "--persona", "remorseful", "--pairs", "2", "--teacher", "embedded"]
    )
    assert new.exit_code == 0, new.output
    runs = sorted((artifacts / "runs").iterdir())
    sources = json.loads((runs[-1] / "sources.json").read_text())
    assert sources["distill.pairs"] == "cli" and sources["models.teacher"] == "cli"
