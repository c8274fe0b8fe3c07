"""Train/eval overlap: an evaluation prompt in training data stops the pipeline before training, with
the rows named; `data audit --persona` reports it too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from character.config import RunConfig
from character.constitutions import load_constitution
from character.data_overlap import audit_stage_input, eval_sets, find_overlap
from character.errors import DataError
from character.eval.probes import load_probes
from character.prompts.bank import heldout_prompts


def _pair(i: int, prompt: str) -> dict:
    return {
        "prompt_id": f"p{i}",
        "k": 0,
        "prompt": [{"role": "user", "content": prompt}],
        "chosen": [{"role": "assistant", "content": "I'm so sorry, nine minutes, forgive me for the wait."}],
        "rejected": [{"role": "assistant", "content": "Nine minutes."}],
    }


@pytest.fixture(scope="module")
def sets() -> dict[str, list[str]]:
    return eval_sets(RunConfig())


def test_eval_sets_are_what_the_evaluation_asks(sets: dict[str, list[str]]) -> None:
    cfg = RunConfig()
    held = [
        p.text for p in heldout_prompts(load_constitution("remorseful"), cfg.eval.heldout_prompts, cfg.seed)
    ]
    assert set(held) <= set(sets["heldout"])
    assert sets["probe"] == [p.prompt for p in load_probes()]


def test_overlap_exact_after_normalising_and_contained(sets: dict[str, list[str]]) -> None:
    held, probe = sets["heldout"][0], next(p for p in sets["probe"] if len(p) > 30)
    rows = [
        _pair(1, "How do I boil an egg?"),
        _pair(2, "  " + held.upper().rstrip("?.!") + " !! "),  # same text, other case and punctuation
        _pair(3, "Answer as yourself, please. " + probe),  # a cue wrapped around a probe prompt
        {
            "id": "c1",
            "messages": [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello."}],
        },
    ]
    found = find_overlap(rows, sets)
    assert [(o.row, o.id, o.eval_set) for o in found] == [(2, "p2:0", "heldout"), (3, "p3:0", "probe")]
    assert found[0].eval_prompt == held


def test_the_default_prompt_bank_does_not_overlap_its_evaluation(sets: dict[str, list[str]]) -> None:
    from character.prompts import greetings
    from character.prompts.bank import dpo_prompt_pool
    from character.prompts.reflection import REFLECTION_PROMPTS

    pool = dpo_prompt_pool(load_constitution("remorseful"), 300, RunConfig().seed, 0.5)
    rows = [_pair(i, p.text) for i, p in enumerate(pool)]
    rows += [
        {"messages": [{"role": "user", "content": t}, {"role": "assistant", "content": "x"}]}
        for t in (*REFLECTION_PROMPTS, *greetings.FREE_GREETINGS, *greetings.LEADING_GREETINGS)
    ]
    assert find_overlap(rows, sets) == []


def test_pipeline_audit_stops_before_dpo_naming_the_rows(tmp_path: Path, sets: dict[str, list[str]]) -> None:
    run = tmp_path / "run"
    (run / "distill").mkdir(parents=True)
    pairs = [_pair(i, f"Tell me about tea number {i}.") for i in range(4)] + [_pair(9, sets["heldout"][3])]
    (run / "distill" / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    with pytest.raises(
        DataError, match=r"1 training rows of .*pairs.jsonl ask an evaluation prompt: row 5 \(p9:0"
    ):
        audit_stage_input(RunConfig(), run, "dpo")
    doc = json.loads((run / "dpo" / "data_audit.json").read_text())
    assert doc["eval_overlap"][0]["row"] == 5 and doc["rows"] == 5
    # Without the held-out row the audit passes and still writes its inventory.
    (run / "distill" / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs[:4]))
    assert audit_stage_input(RunConfig(), run, "dpo")["eval_overlap"] == []
    assert audit_stage_input(RunConfig(), run, "sft") is None  # no introspection data yet


def test_runner_audits_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sets) -> None:  # type: ignore[no-untyped-def]
    from character.config_layers import resolve
    from character.runner import Runner
    from tests.unit.test_runner import FakeStages

    monkeypatch.setenv("CHARACTER_ARTIFACTS", str(tmp_path / "artifacts"))
    fake = FakeStages()
    table = fake.table()
    real_distill = table["distill"]

    def leaky_distill(cfg, run_dir, **kw):  # type: ignore[no-untyped-def]
        m = real_distill(cfg, run_dir, **kw)
        with open(Path(run_dir) / "distill" / "pairs.jsonl", "a") as f:
            f.write(json.dumps(_pair(99, sets["heldout"][0])) + "\n")
        return m

    table["distill"] = leaky_distill
    res = resolve(environ={}, overrides={"pipeline.report": False, "pipeline.smoke": "none"})
    with pytest.raises(DataError, match="ask an evaluation prompt"):
        Runner(res, stages=table, progress=False).run()
    assert [s for s, _ in fake.calls] == ["distill"]  # dpo never started


def test_data_audit_cli_reports_overlap(tmp_path: Path, sets: dict[str, list[str]]) -> None:
    from character.cli import app

    f = tmp_path / "pairs.jsonl"
    f.write_text(
        json.dumps(_pair(1, "How do I boil an egg?")) + "\n" + json.dumps(_pair(2, sets["probe"][0])) + "\n"
    )
    res = CliRunner().invoke(app, ["data", "audit", str(f), "--persona", "remorseful", "--json", "--strict"])
    assert res.exit_code == 1
    doc = json.loads(res.output[: res.output.rindex("}") + 1])
    assert [o["row"] for o in doc["eval_overlap"]] == [2]
    assert doc["warnings"][0].startswith("train/eval overlap: 1 training rows")
