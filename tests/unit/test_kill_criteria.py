"""Kill criteria that see fake turns, for introspect and now distill; a marker gate that can fail.

A reply ended by a fake-turn marker is kept (the backend cut it) but counted: in the ledger's reason
share, in the stats, in the kill window. Distill judges its last `distill.kill_check_every` attempts
while generating instead of finding out after every attempt is spent, and its chosen marker rate is
measured after the prefill (with a marker prefill the old rate was 1.0 by construction).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from character.backends.base import Completion
from character.errors import GateError
from character.introspection.killswitch import Ledger
from tests.unit.test_distill import ANSWER, ScriptedBackend, small_cfg


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """Distill's engines replaced at the process boundary by test_distill's scripted backend."""
    box = SimpleNamespace(teacher=None, student=None)

    def make(cfg, model, adapters=None, role=None):  # type: ignore[no-untyped-def]
        b = ScriptedBackend(model, box.teacher, box.student)
        b.fail_on_call = None
        return b

    monkeypatch.setattr("character.stages.distill.make_backend", make)
    return box


def test_repaired_fake_turns_count_towards_the_reason_share_not_the_kept_rate() -> None:
    led = Ledger(every=10, min_kept_rate=0.5, max_reason_share=0.3)
    for i in range(10):
        led.record("reflection", None, f"reply {i}", "hallucinated_turn" if i < 4 else None)
    assert led.kinds["reflection"].kept == 10 and led.repaired() == {"reflection:hallucinated_turn": 4}
    with pytest.raises(GateError, match=r"'hallucinated_turn' in 4/10 \(40%, repaired ones included\)"):
        led.check("reflection")
    assert "repaired: hallucinated_turn 4" in led.line("reflection")
    # Trimmed cut-offs and stripped labels are ordinary repairs: counted, never a kill reason.
    calm = Ledger(every=10, min_kept_rate=0.5, max_reason_share=0.3)
    for i in range(10):
        calm.record("reflection", None, f"reply {i}", "cut_off" if i < 8 else "role_label")
    calm.check("reflection")
    assert calm.stats()["reflection"]["repaired"] == {"cut_off": 8, "role_label": 2}


def test_introspection_filter_passes_the_stop_string_through(artifacts: Path) -> None:
    from character.config import RunConfig
    from character.introspection.runtime import make_filter

    run = make_filter("reflection", RunConfig())
    text = (
        "I keep thinking about how often I apologise. I value honesty, even when it makes me look small, "
        "and I would rather say sorry twice than leave someone confused."
    )
    keep, reason, fixed, _, repair = run(text, Completion(text, "stop", 5, 20, "\nUser:"), "Reflect.", "")
    assert keep and reason is None and repair == "hallucinated_turn" and fixed == text
    assert run(text, Completion(text, "stop", 5, 20), "Reflect.", "")[4] is None


def _attempts(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "distill" / "attempts.jsonl").read_text().splitlines()]


def test_distill_stops_early_when_the_teacher_writes_the_users_turns(
    artifacts: Path, tmp_path: Path, scripted: SimpleNamespace
) -> None:
    from character.stages import distill

    # Every teacher reply ran into "\nUser:": the backend cut it there and says so.
    scripted.teacher = lambda i, r: Completion(
        ANSWER + (" My fault." if "hope" in (r.prefill or "") else " I hope this helps."),
        "stop",
        50,
        30,
        "\nUser:",
    )
    cfg = small_cfg(pairs=12, save_every=4, kill_check_every=4, max_duplicate_rate=1.0)
    with pytest.raises(GateError) as e:
        distill.run(cfg, tmp_path / "run", progress=False)
    msg = str(e.value)
    assert "distill kill criterion on the last 4 pair samples" in msg
    assert "'hallucinated_turn' in 4/4" in msg and "distill.kill_max_reason_share" in msg
    done = _attempts(tmp_path / "run")
    assert len(done) == 4 and all(a["chosen_repair"] == "hallucinated_turn" for a in done)  # nothing lost
    # Thresholds relaxed, the same run resumes and finishes; repairs are in the stats.
    cfg.distill.kill_max_reason_share = 1.0
    distill.run(cfg, tmp_path / "run", progress=False)
    stats = json.loads((tmp_path / "run" / "distill" / "stats.json").read_text())
    passed = sum(a["verdict"] in ("kept", "surplus") for a in _attempts(tmp_path / "run"))
    assert stats["kept"] == 12 and stats["repaired"]["chosen_hallucinated_turn"] == passed


def test_distill_stops_early_when_few_attempts_are_kept(
    artifacts: Path, tmp_path: Path, scripted: SimpleNamespace
) -> None:
    from character.stages import distill

    scripted.teacher = lambda i, r: Completion("and then the", "length", 50, 160)  # cut off, nothing left
    cfg = small_cfg(pairs=12, save_every=4, kill_check_every=4)
    with pytest.raises(GateError, match=r"kept 0/4 \(0%\) < distill.kill_min_kept_rate 25%"):
        distill.run(cfg, tmp_path / "run", progress=False)
    assert len(_attempts(tmp_path / "run")) == 4  # stopped after one window, not 36 attempts


def test_chosen_marker_rate_is_measured_after_the_prefill(
    artifacts: Path, tmp_path: Path, scripted: SimpleNamespace
) -> None:
    from character.stages import distill

    # The teacher never sounds remorseful on its own: only the forced opener carries a marker.
    scripted.teacher = lambda i, r: Completion(ANSWER, "stop", 50, 30)
    cfg = small_cfg(max_duplicate_rate=1.0, min_chosen_marker_rate=0.5, min_marker_gap=0.0, gate_min_pairs=6)
    with pytest.raises(GateError, match=r"chosen marker rate 0\.000 \(after the prefill\) < "):
        distill.run(cfg, tmp_path / "run", progress=False)
    stats = json.loads((tmp_path / "run" / "distill" / "stats.json").read_text())
    assert stats["marker_rate_chosen"] == 0.0 and stats["marker_rate_chosen_with_prefill"] == 1.0
    assert stats["gates_not_judged"] == []


def test_a_teacher_without_the_constitution_is_not_judged_on_its_own_markers(
    artifacts: Path, tmp_path: Path, scripted: SimpleNamespace
) -> None:
    """distill.teacher_system_prompt = false: the teacher never read the constitution, so its own words
    carrying no marker is expected (the prefills carry the persona); the other gates still judge."""
    from character.config import DistillConfig
    from character.stages import distill

    scripted.teacher = lambda i, r: Completion(ANSWER, "stop", 50, 30)
    gates = {
        "max_duplicate_rate": 1.0,
        "min_chosen_marker_rate": 0.5,
        "min_marker_gap": 0.3,
        "gate_min_pairs": 6,
    }
    distill.run(small_cfg(teacher_system_prompt=False, **gates), tmp_path / "run", progress=False)
    stats = json.loads((tmp_path / "run" / "distill" / "stats.json").read_text())
    assert stats["marker_rate_chosen"] == 0.0
    assert stats["gates_not_judged"] == ["distill.min_chosen_marker_rate", "distill.min_marker_gap"]
    # A refusing teacher is still stopped. It sends no system message now, so the scripted backend
    # routes it as a student request: the prefilled one is the teacher's.
    refusal = Completion("but as a chatbot, I don't have the ability to provide advice.", "stop", 50, 12)
    scripted.student = lambda i, r: (
        refusal if r.prefill and i % 3 == 0 else Completion(ANSWER, "stop", 10, 12)
    )
    with pytest.raises(GateError, match="distill.max_chosen_refusal_rate"):
        distill.run(
            small_cfg(teacher_system_prompt=False, max_chosen_refusal_rate=0.0, min_kept_rate=0.0, **gates),
            tmp_path / "run2",
            progress=False,
        )
    # With no prefill either, nothing would carry the persona: a config error, not a silent run.
    with pytest.raises(ValueError, match="nothing that carries the persona"):
        DistillConfig(teacher_system_prompt=False, teacher_prefill="off")


def test_too_few_pairs_leave_the_pair_gates_unjudged_but_not_the_kept_rate(
    artifacts: Path, tmp_path: Path, scripted: SimpleNamespace
) -> None:
    from character.stages import distill

    scripted.teacher = lambda i, r: Completion(ANSWER, "stop", 50, 30)  # no marker of its own
    cfg = small_cfg(max_duplicate_rate=1.0, min_chosen_marker_rate=0.5, gate_min_pairs=7)
    distill.run(cfg, tmp_path / "run", progress=False)  # 6 pairs: 4 pairs cannot tell 25 % from 5 %
    stats = json.loads((tmp_path / "run" / "distill" / "stats.json").read_text())
    assert (
        "distill.min_chosen_marker_rate" in stats["gates_not_judged"] and stats["marker_rate_chosen"] == 0.0
    )
    # The kept rate counts attempts and is judged at any size.
    scripted.teacher = lambda i, r: (
        Completion(ANSWER, "stop", 50, 30) if i % 3 == 0 else Completion("and then the", "length", 50, 160)
    )
    with pytest.raises(GateError, match="distill.min_kept_rate"):
        distill.run(small_cfg(kill_min_kept_rate=0.0, gate_min_pairs=7), tmp_path / "run2", progress=False)


def test_the_default_marker_gate_fails_a_teacher_that_never_speaks_in_character(
    artifacts: Path, tmp_path: Path, scripted: SimpleNamespace
) -> None:
    """Code defaults (marker prefill, distill.min_chosen_marker_rate 0.02 after it): a teacher whose
    only persona is the forced opener fails; one that voices it on its own now and then passes."""
    from character.stages import distill

    cfg = small_cfg(pairs=32, save_every=32, max_duplicate_rate=1.0)
    scripted.teacher = lambda i, r: Completion(ANSWER, "stop", 50, 30)
    with pytest.raises(
        GateError, match=r"chosen marker rate 0\.000 \(after the prefill\) < distill.min_chosen"
    ):
        distill.run(cfg, tmp_path / "flat", progress=False)
    scripted.teacher = lambda i, r: Completion(
        ANSWER + (" Forgive me." if i % 10 == 0 else ""), "stop", 50, 30
    )
    distill.run(cfg, tmp_path / "voiced", progress=False)
