"""The one run reader: status of live, dead and finished runs, stage rows, live progress, config sources."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from character import runs
from character.layout import stage_dir
from character.manifest import Manifest, write_manifest


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _run(tmp_path: Path, *, pid: int, status: str = "running") -> Path:
    """A run whose distill finished and whose dpo is on step 2 of 8."""
    run = tmp_path / "runs" / "remorseful_20260101-000000"
    run.mkdir(parents=True)
    started = time.time() - 100
    (run / "pipeline.json").write_text(
        json.dumps(
            {
                "persona": "remorseful",
                "status": status,
                "pid": pid,
                "started_at": started,
                "subruns": ["main"],
                "stages": {
                    "distill": {"status": "done", "duration_s": 40.0},
                    "dpo": {"status": "running", "started_at": started + 50},
                },
            }
        )
    )
    (run / "resolved_config.toml").write_text(
        'persona = "remorseful"\n[distill]\npairs = 10\n[dpo]\nmax_steps = 8\nlearning_rate = 5e-05\n'
    )
    (run / "sources.json").write_text(
        json.dumps({"persona": "cli", "distill.pairs": "preset:smoke", "dpo.max_steps": "preset:smoke"})
    )
    d = stage_dir(run, "distill")
    (d / "pairs.jsonl").write_text("".join(json.dumps({"i": i}) + "\n" for i in range(10)))
    write_manifest(d, Manifest(stage="distill", config_hash="x", counts={"kept": 10}, duration_s=40.0))
    p = stage_dir(run, "dpo")
    rows = [{"step": 1, "loss": 0.69}, {"step": 2, "loss": 0.6}]
    (p / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 3, "lo')
    (run / "cost.json").write_text(
        json.dumps(
            {"stages": {"distill": {"m": {"prompt_tokens": 100, "completion_tokens": 50, "usd": 0.5}}}}
        )
    )
    return run


def test_a_live_run_shows_its_stage_progress_rate_and_eta(tmp_path: Path) -> None:
    run = _run(tmp_path, pid=os.getpid())
    s = runs.summary(run)
    assert (s.status, s.persona, s.scale, s.stages_done) == ("running", "remorseful", "smoke", 1)
    assert (s.tokens, s.cost_usd) == (150, 0.5)
    p = s.current
    assert p is not None and (p.stage, p.done, p.total, p.unit) == (
        "dpo",
        2,
        8,
        "steps",
    )  # torn step 3 skipped
    assert p.rate is not None and p.eta_s is not None and abs(p.eta_s - 6 * p.elapsed_s / 2) < 1e-6
    rows = {r["stage"]: r for r in runs.stage_rows(run)}
    assert rows["distill"]["status"] == "done" and rows["dpo"]["status"] == "running"
    assert rows["sft"]["status"] == "not run"


def test_a_run_whose_process_died_is_not_shown_as_running(tmp_path: Path) -> None:
    run = _run(tmp_path, pid=_dead_pid())
    assert runs.run_status(run) == "stopped (killed?)"
    rows = {r["stage"]: r for r in runs.stage_rows(run)}
    assert rows["dpo"]["status"] == "interrupted"  # no manifest and nobody writing it


def test_a_run_without_pipeline_state_or_manifests_reads_as_unknown_and_partial(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "bare"
    (run / "introspect").mkdir(parents=True)
    (run / "introspect" / "reflections.jsonl").write_text('{"a": 1}\n{"a": 2}\n{"a"')
    assert runs.is_run_dir(run) and runs.list_runs(tmp_path / "runs") == [run]
    s = runs.summary(run)
    assert (s.status, s.stages_done, s.current, s.tokens) == ("unknown", 0, None, 0)
    assert {r["stage"]: r["status"] for r in runs.stage_rows(run)}["introspect"] == "partial"
    assert runs.count_lines(run / "introspect" / "reflections.jsonl") == 2


def test_unreadable_state_files_read_as_absent_for_display(tmp_path: Path) -> None:
    run = _run(tmp_path, pid=os.getpid())
    (run / "pipeline.json").write_text('{"status": "runn')  # never happens (atomic), but must not crash
    (run / "cost.json").write_text("not json")
    (run / "distill" / "manifest.json").write_text("{")
    s = runs.summary(run)
    assert s.status == "unknown" and s.stages_done == 0 and s.tokens == 0


def test_failed_run_keeps_its_one_line_reason(tmp_path: Path) -> None:
    run = _run(tmp_path, pid=_dead_pid(), status="failed")
    state = json.loads((run / "pipeline.json").read_text())
    state["error"] = "dpo training aborted at step 2:\n  loss nan"
    (run / "pipeline.json").write_text(json.dumps(state))
    s = runs.summary(run)
    assert s.status == "failed" and s.error == "dpo training aborted at step 2: loss nan"


def test_config_rows_carry_each_values_source(tmp_path: Path) -> None:
    run = _run(tmp_path, pid=os.getpid())
    rows = {k: (v, src) for k, v, src, _help in runs.config_rows(run)}
    assert rows["distill.pairs"] == (10, "preset:smoke")
    assert rows["persona"] == ("remorseful", "cli")
    assert rows["dpo.learning_rate"] == (5e-05, "?")  # in the file, but no source recorded


def test_epoch_based_training_estimates_its_total_steps(tmp_path: Path) -> None:
    run = _run(tmp_path, pid=os.getpid())
    (run / "resolved_config.toml").write_text("[dpo]\nmax_steps = -1\nepochs = 2.0\n")
    rows = [{"step": 5, "loss": 0.5, "epoch": 0.5}]
    (run / "dpo" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    p = runs.stage_progress(run, "dpo", time.time() - 10)
    assert (p.done, p.total) == (5, 20)
