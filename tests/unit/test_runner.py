"""Orchestration of the pipeline runner, with fake stages injected through the stage table.

The fakes implement the real stage contract (`run(cfg, run_dir, *, progress, tracker) -> Manifest`,
manifest written last, rows appended through JsonlStore, tokens recorded on the tracker, a NaN loss
raising TrainingAborted as the health callback would): they stand in at the process boundary so the
runner's own logic — sequencing, smoke ordering, resume, refusal, force, cost — is what is tested.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from character.config import Price, RunConfig
from character.config_layers import config_hash, resolve
from character.errors import BudgetExceeded, ConfigError, TrainingAborted, UsageError
from character.layout import STAGES, stage_dir
from character.manifest import Manifest, read_manifest, write_manifest
from character.records import JsonlStore
from character.runner import (
    SMOKE_ALLOWED,
    Runner,
    SmokeFailed,
    changed_keys,
    check_stage_output,
    read_state,
    smoke_config,
    stage_keys,
)


class FakeStages:
    """Stage functions honouring the contract; `crash_after` simulates a kill mid-generation."""

    def __init__(self, crash_after: int | None = None):
        self.calls: list[tuple[str, str]] = []
        self.crash_after = crash_after

    def table(self) -> dict:
        return {s: self._make(s) for s in STAGES}

    def _make(self, stage: str):
        def run(cfg: RunConfig, run_dir: Path, *, progress: bool = True, tracker=None) -> Manifest:
            run_dir = Path(run_dir)
            self.calls.append((stage, run_dir.name))
            sd = stage_dir(run_dir, stage)
            m = Manifest(stage=stage, config_hash=config_hash(cfg), seed=cfg.seed)
            if stage == "distill":
                store = JsonlStore(sd / "pairs.jsonl", ("prompt_id", "k"))
                done = store.keys()
                for i in range(cfg.distill.pairs):
                    if (f"p{i}", 0) in done:
                        continue
                    if self.crash_after is not None and len(done) >= self.crash_after:
                        raise KeyboardInterrupt  # the process dies here; rows so far are on disk
                    store.append([{"prompt_id": f"p{i}", "k": 0, "chosen": "sorry", "rejected": "ok"}])
                    done.add((f"p{i}", 0))
                    if tracker is not None:
                        tracker.record(stage, cfg.models.teacher, 100, 50)
                m.counts = {"kept": len(store)}
                m.dropped = {"too_short": 1}
                m.tokens = tracker.stage_tokens(stage) if tracker else {}
            if stage == "dpo":
                lr = cfg.dpo.learning_rate
                with open(sd / "metrics.jsonl", "a") as f:
                    for step in range(1, 4):
                        loss = float("nan") if lr > 1 else 0.7 / step
                        f.write(
                            json.dumps({"step": step, "loss": str(loss) if math.isnan(loss) else loss}) + "\n"
                        )
                        if math.isnan(loss):
                            raise TrainingAborted(f"step {step}: non-finite loss = nan")
            if stage == "introspect":
                n = cfg.introspect.reflections + cfg.introspect.interactions
                rows = [
                    {"id": f"r{i}", "kind": "reflection" if i < cfg.introspect.reflections else "interaction"}
                    for i in range(n)
                ]
                (sd / "introspection.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
                m.counts = {"kept": n}
            if stage == "eval":
                (sd / "markers.json").write_text(json.dumps({"before": 0.0, "after": 0.5, "n_after": 8}))
            write_manifest(sd, m.finish())
            return m

        return run


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CHARACTER_ARTIFACTS", str(tmp_path / "artifacts"))
    return tmp_path / "artifacts" / "runs"


def _res(**overrides):
    return resolve(environ={}, overrides=overrides)


def test_smoke_runs_come_first_each_in_its_own_folder(runs: Path) -> None:
    fake = FakeStages()
    result = Runner(_res(**{"pipeline.report": False}), stages=fake.table(), progress=False).run()
    d = result.run_dir
    assert d.parent == runs and d.name.startswith("remorseful_")
    order = [who for _, who in fake.calls]
    assert order == ["smoke-small"] * 6 + ["smoke-large"] * 6 + [d.name] * 6
    assert [s for s, _ in fake.calls[:6]] == list(STAGES)
    for sub in ("smoke-small", "smoke-large", "."):
        assert (d / sub / "resolved_config.toml").exists() and (d / sub / "config_hash.txt").exists()
        assert all(read_manifest(d / sub / s) for s in STAGES)
    assert read_state(d)["status"] == "done"


def test_smoke_config_changes_only_sizes_steps_and_gates() -> None:
    full = _res(**{"dpo.learning_rate": 3e-4, "distill.pairs": 500}).config
    for preset in ("smoke-small", "smoke-large"):
        small = smoke_config(full, preset)
        a = full.model_dump(mode="json")
        b = small.model_dump(mode="json")
        from character.config_layers import flatten

        fa, fb = flatten(a, "a"), flatten(b, "b")
        diff = {k for k in fa if fa[k] != fb[k]}
        assert diff - SMOKE_ALLOWED <= {"name_suffix", "pipeline.smoke", "pipeline.report"}
        assert small.dpo.learning_rate == 3e-4  # the full run's hyperparameters carry over
        assert small.name_suffix == preset  # smoke checkpoints never replace the real ones
    assert smoke_config(full, "smoke-small").distill.pairs == 8


def test_smoke_preset_that_changes_a_hyperparameter_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "smoke-small.toml").write_text("[dpo]\nlearning_rate = 1e-3\nmax_steps = 3\n")
    monkeypatch.setattr("character.paths.presets_dir", lambda: tmp_path)
    with pytest.raises(ConfigError, match=r"dpo\.learning_rate"):
        smoke_config(RunConfig(), "smoke-small")


def test_nan_in_smoke_small_stops_before_smoke_large(runs: Path) -> None:
    fake = FakeStages()
    with pytest.raises(SmokeFailed, match="smoke-small failed.*non-finite.*full run was not started"):
        Runner(_res(**{"dpo.learning_rate": 1e4}), stages=fake.table(), progress=False).run()
    (d,) = runs.iterdir()
    assert [s for s, _ in fake.calls] == ["distill", "dpo"]
    assert not (d / "smoke-large").exists() and not (d / "distill").exists()
    state = read_state(d)
    assert state["status"] == "failed" and "non-finite" in state["error"]
    assert read_state(d / "smoke-small")["stages"]["dpo"]["status"] == "failed"
    assert (d / "report.md").exists()  # the report still shows what happened


def test_resume_skips_finished_stages(runs: Path) -> None:
    fake = FakeStages()
    res = _res(**{"pipeline.smoke": "none"})
    d = Runner(res, stages=fake.table(), progress=False).run().run_dir
    fake.calls.clear()
    Runner(res, run_dir=d, stages=fake.table(), progress=False).run()
    assert fake.calls == []
    # Settings no stage output depends on (budget, backend, report) do not count as changes.
    res2 = _res(**{"pipeline.smoke": "none", "backend.batch_size": 4, "budget_usd": 5.0})
    Runner(res2, run_dir=d, stages=fake.table(), progress=False).run()
    assert fake.calls == []


def test_changed_config_for_finished_stage_is_refused_then_forced(runs: Path) -> None:
    fake = FakeStages()
    d = Runner(_res(**{"pipeline.smoke": "none"}), stages=fake.table(), progress=False).run().run_dir
    fake.calls.clear()
    changed = _res(**{"pipeline.smoke": "none", "dpo.beta": 0.2})
    with pytest.raises(ConfigError, match=r"stage 'dpo'.*dpo\.beta \(0\.1 -> 0\.2\).*--force dpo"):
        Runner(changed, run_dir=d, stages=fake.table(), progress=False).run()
    assert fake.calls == []
    Runner(changed, run_dir=d, stages=fake.table(), progress=False, force="dpo").run()
    assert [s for s, _ in fake.calls] == ["dpo", "introspect", "sft", "merge", "eval"]
    assert len(list((d / "superseded").iterdir())) == 5
    fake.calls.clear()
    Runner(changed, run_dir=d, stages=fake.table(), progress=False).run()  # now consistent
    assert fake.calls == []


def test_stage_keys_are_cumulative() -> None:
    assert "distill.pairs" in stage_keys("distill") and "dpo.beta" not in stage_keys("distill")
    assert {"distill.pairs", "dpo.beta", "sft.learning_rate"} <= set(stage_keys("sft"))
    assert "eval.heldout_prompts" not in stage_keys("merge")
    assert not any(k.startswith(("backend.", "pipeline.")) or k == "budget_usd" for k in stage_keys("eval"))
    assert changed_keys({"a": 1, "b": 2}, {"a": 1, "b": 3}) == ["b"]


def test_interrupted_generation_resumes_without_loss_or_duplicates(runs: Path) -> None:
    res = _res(**{"pipeline.smoke": "none", "distill.pairs": 12})
    with pytest.raises(KeyboardInterrupt):
        Runner(res, stages=FakeStages(crash_after=5).table(), progress=False).run()
    (d,) = runs.iterdir()
    assert read_state(d)["stages"]["distill"]["status"] == "failed"
    fake = FakeStages()
    Runner(res, run_dir=d, stages=fake.table(), progress=False).run()
    rows = JsonlStore(d / "distill" / "pairs.jsonl").read()
    keys = [(r["prompt_id"], r["k"]) for r in rows]
    assert len(keys) == len(set(keys)) == 12


def test_partial_stage_with_changed_config_is_refused(runs: Path) -> None:
    res = _res(**{"pipeline.smoke": "none", "distill.pairs": 12})
    with pytest.raises(KeyboardInterrupt):
        Runner(res, stages=FakeStages(crash_after=5).table(), progress=False).run()
    (d,) = runs.iterdir()
    res2 = _res(**{"pipeline.smoke": "none", "distill.pairs": 12, "sampling.temperature": 1.0})
    with pytest.raises(ConfigError, match=r"partial output.*sampling\.temperature"):
        Runner(res2, run_dir=d, stages=FakeStages().table(), progress=False).run()


def test_from_and_until(runs: Path) -> None:
    fake = FakeStages()
    res = _res(**{"pipeline.smoke": "none"})
    d = Runner(res, stages=fake.table(), progress=False, until="dpo").run().run_dir
    assert [s for s, _ in fake.calls] == ["distill", "dpo"]
    assert not (d / "introspect").exists()
    fake.calls.clear()
    Runner(res, run_dir=d, stages=fake.table(), progress=False, start="introspect", until="sft").run()
    assert [s for s, _ in fake.calls] == ["introspect", "sft"]
    with pytest.raises(UsageError, match="--from merge needs --resume"):
        Runner(res, stages=fake.table(), progress=False, start="merge")
    with pytest.raises(UsageError, match="--from eval: stage 'merge' has not finished"):
        Runner(res, run_dir=d, stages=fake.table(), progress=False, start="eval").run()
    with pytest.raises(UsageError, match="not a stage"):
        Runner(res, stages=fake.table(), progress=False, start="train")


def test_missing_stage_is_named_before_anything_runs(runs: Path) -> None:
    fake = FakeStages()
    table = fake.table()
    del table["sft"]
    with pytest.raises(UsageError, match="sft not available"):
        Runner(_res(), stages=table, progress=False).run()
    assert fake.calls == [] and not runs.exists()


def test_cost_totals_budget_cap_and_resume_seeding(runs: Path, caplog: pytest.LogCaptureFixture) -> None:
    prices = {"embedded": Price(input_per_million=1000.0, output_per_million=2000.0)}
    # 100 prompt + 50 completion tokens per pair: 0.1 + 0.1 = $0.2 per pair.
    res = _res(**{"pipeline.smoke": "none", "distill.pairs": 4, "backend.prices": prices})
    d = Runner(res, stages=FakeStages().table(), progress=False).run().run_dir
    cost = json.loads((d / "cost.json").read_text())
    assert cost["stages"]["distill"]["embedded"]["prompt_tokens"] == 400
    assert cost["usd"] == pytest.approx(0.8)
    assert read_state(d)["cost_usd"] == pytest.approx(0.8)
    # Resumed: the finished distill's spending counts against the new cap and stays in cost.json.
    Runner(res, run_dir=d, stages=FakeStages().table(), progress=False).run()
    assert json.loads((d / "cost.json").read_text())["usd"] == pytest.approx(0.8)
    capped = _res(
        **{"pipeline.smoke": "none", "distill.pairs": 10, "backend.prices": prices, "budget_usd": 1.0}
    )
    with pytest.raises(BudgetExceeded, match="--resume"):
        Runner(capped, stages=FakeStages().table(), progress=False).run()
    d2 = max(runs.iterdir(), key=lambda p: p.stat().st_mtime)
    assert read_state(d2)["status"] == "budget"
    assert len(JsonlStore(d2 / "distill" / "pairs.jsonl")) == 5  # kept everything it paid for
    assert "burn rate" in caplog.text


def test_runner_refuses_nan_metrics_a_stage_let_through(tmp_path: Path) -> None:
    sd = stage_dir(tmp_path, "sft")
    (sd / "metrics.jsonl").write_text('{"step": 1, "loss": 1.2}\n{"step": 2, "loss": "nan"}\n')
    m = Manifest(stage="sft", config_hash="x")
    write_manifest(sd, m)
    with pytest.raises(TrainingAborted, match="non-finite loss"):
        check_stage_output(tmp_path, "sft", m)
    (sd / "manifest.json").unlink()
    with pytest.raises(Exception, match="without writing"):
        check_stage_output(tmp_path, "sft", m)


def test_report_written_with_plots(runs: Path) -> None:
    d = Runner(_res(**{"pipeline.smoke": "small"}), stages=FakeStages().table(), progress=False).run().run_dir
    md = (d / "report.md").read_text()
    assert "## smoke-small" in md and "## main" in md
    assert "| main | 0.000 | 0.500 (n=8) | +50.0 |" in md
    assert (d / "report" / "main-training.png").exists()
    assert "data:image/png;base64," in (d / "report.html").read_text()
