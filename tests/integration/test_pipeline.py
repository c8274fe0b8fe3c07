"""The real pipeline on the embedded model, through the real CLI in a subprocess.

- `character pipeline remorseful --scale smoke --smoke small` runs every stage and writes every artifact;
- a DPO learning rate of 1e4 (set through the environment, no mock) collapses smoke-small's model to
  finite garbage (uniform predictions, chosen replies far less likely), and the collapse gates stop
  the run before smoke-large starts, with nothing registered;
- a pipeline SIGKILLed mid-generation and resumed with --resume loses no finished sample and
  duplicates none.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from character.layout import STAGES
from character.manifest import read_manifest
from tests.conftest import ROOT
from tests.conftest import cli_env as _env
from tests.conftest import run_cli as _cli


@pytest.fixture(scope="module")
def smoke_run(finished_smoke_run: tuple[Path, str]) -> tuple[Path, str]:
    return finished_smoke_run


def test_smoke_pipeline_writes_every_artifact(smoke_run: tuple[Path, str]) -> None:
    run, output = smoke_run
    assert (run / "resolved_config.toml").exists() and len(
        (run / "config_hash.txt").read_text().strip()
    ) == 16
    sub = run / "smoke-small"
    assert not (run / "smoke-large").exists() and not (run / "distill").exists()  # smoke only, small only
    for stage in STAGES:
        m = read_manifest(sub / stage)
        assert m is not None, f"{stage} has no manifest"
    d = sub / "distill"
    for name in ("pairs.jsonl", "attempts.jsonl", "stats.json", "previews.md"):
        assert (d / name).exists(), name
    assert (sub / "dpo" / "adapter").is_dir() and (sub / "dpo" / "metrics.jsonl").exists()
    assert (sub / "introspect" / "introspection.jsonl").exists() and (
        sub / "introspect" / "stats.json"
    ).exists()
    assert (sub / "sft" / "adapter").is_dir() and (sub / "sft" / "metrics.jsonl").exists()
    assert (sub / "merge" / "model" / "config.json").exists()
    state = json.loads((run / "pipeline.json").read_text())
    assert state["status"] == "done"
    assert json.loads((sub / "cost.json").read_text())["stages"]["distill"]  # tokens counted
    md = (run / "report.md").read_text()
    assert "## smoke-small" in md and "Tokens and cost" in md
    assert (run / "report" / "smoke-small-training.png").exists()
    assert "data:image/png;base64," in (run / "report.html").read_text()
    assert "run finished" in output


def test_collapse_in_smoke_small_dpo_stops_before_smoke_large(
    copy_of_smoke_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Reuse a copy of the finished smoke-small's data: rerun its DPO (and what follows) with lr 1e4,
    # asking for both smoke runs. The runner must stop at smoke-small's DPO. Nothing goes non-finite
    # at 1e4 (fp32 + Adam collapses the model to finite values), so only the collapse gates can see it;
    # the non-finite gate has its own tests (tests/unit/test_dpo_training.py, test_health_gates.py).
    from character import registry

    run = copy_of_smoke_run
    artifacts = run.parent.parent
    monkeypatch.setenv("CHARACTER_ARTIFACTS", str(artifacts))  # this process reads the copy's registry
    before = [c.model_dump() for c in registry.list_checkpoints()]
    res = _cli(
        "pipeline",
        "remorseful",
        "--resume",
        str(run),
        "--smoke",
        "both",
        "--force",
        "dpo",
        artifacts=artifacts,
        CHARACTER_DPO__LEARNING_RATE="1e4",
    )
    assert res.returncode == 1, res.stderr[-2000:]
    err = " ".join(res.stderr.split())
    assert "smoke-small failed" in err and "full run was not started" in err
    assert "dpo training aborted" in err and "collapse:" in err and "lower dpo.learning_rate" in err
    assert "collapse:" in (run / "smoke-small" / "dpo" / "aborted" / "REASON.txt").read_text()
    assert not (run / "smoke-large").exists()
    assert read_manifest(run / "smoke-small" / "dpo") is None
    assert read_manifest(run / "smoke-small" / "distill") is not None  # finished data untouched
    assert json.loads((run / "pipeline.json").read_text())["status"] == "failed"
    assert [c.model_dump() for c in registry.list_checkpoints()] == before  # nothing registered


def _rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip().endswith("}")]


def test_sigkill_mid_generation_then_resume_loses_and_duplicates_nothing(
    artifacts: Path,
) -> None:
    # smoke-small's distill, saving every 4 attempts so a kill lands between saved batches.
    args = ["pipeline", "remorseful", "--scale", "smoke", "--smoke", "small", "--until", "distill"]
    args += ["--no-progress", "--set", "distill.save_every=4"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "character.cli", *args],
        env=_env(artifacts),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    attempts = None
    deadline = time.time() + 600
    try:
        while time.time() < deadline:
            runs = list((artifacts / "runs").glob("*")) if (artifacts / "runs").exists() else []
            if runs:
                attempts = runs[0] / "smoke-small" / "distill" / "attempts.jsonl"
                if len(_rows(attempts)) >= 4:
                    break
            if proc.poll() is not None:
                pytest.fail(f"pipeline ended before it could be killed: {proc.stderr.read()[-2000:]}")
            time.sleep(0.2)
        else:
            pytest.fail("no attempts were written within 10 minutes")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert attempts is not None
    sub = attempts.parent.parent
    run = sub.parent
    before = _rows(attempts)
    assert read_manifest(sub / "distill") is None  # killed: not finished
    assert 4 <= len(before) < 32
    res = _cli("pipeline", "remorseful", "--resume", str(run), "--until", "distill", artifacts=artifacts)
    assert res.returncode == 0, res.stderr[-3000:]
    after = _rows(attempts)
    keys = [(r["prompt_id"], r["k"]) for r in after]
    assert len(keys) == len(set(keys)), "a sample was generated twice"
    assert {(r["prompt_id"], r["k"]) for r in before} <= set(keys), "a finished sample was lost"
    assert after[: len(before)] == before  # the finished rows are untouched, byte for byte in content
    pairs = _rows(sub / "distill" / "pairs.jsonl")
    pair_keys = [(r["prompt_id"], r["k"]) for r in pairs]
    assert len(pair_keys) == len(set(pair_keys))
    kept = {(r["prompt_id"], r["k"]) for r in after if r["verdict"] == "kept"}
    assert set(pair_keys) == kept
    m = read_manifest(sub / "distill")
    assert m is not None and m.counts["kept"] == len(pairs)
