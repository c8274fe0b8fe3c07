"""Training past one process, on the embedded model on CPU (gloo):

- DPO under `accelerate launch` with 2 CPU processes on gloo (through `character train dpo
  --num-processes 2`; accelerate's own `--cpu` would start one process without MPI) writes one adapter, one manifest, one registry entry and one metrics line per step, and trains like a
  one-process run of the same global batch (same losses, step by step);
- the one-process run reports to tensorboard (event files inside the run);
- a DPO run SIGKILLed after its first complete checkpoint resumes from it (`--resume`) and ends with
  every step logged exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from character import registry
from character.config_layers import resolve
from character.training import tracking
from tests.conftest import ROOT, cli_env, run_cli
from tests.integration.dpo_tiny import SFT_CONFIG, write_config, write_introspection, write_pairs

pytestmark = pytest.mark.slow


def _metrics(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "dpo" / "metrics.jsonl").read_text().splitlines()]


def _loss_steps(rows: list[dict]) -> list[int]:
    return [r["step"] for r in rows if "loss" in r]


def test_two_processes_train_like_one_and_publish_once(artifacts: Path, tmp_path: Path) -> None:
    from character.stages import dpo

    pairs = write_pairs(tmp_path / "pairs.jsonl")
    cfg_file = write_config(tmp_path / "cfg.toml")
    # The reference: one process, global batch 4 = micro 2 x 2 accumulation steps; reports to tensorboard.
    cfg = resolve(
        config_file=cfg_file, environ={}, overrides={"name_suffix": "one", "train.report_to": ["tensorboard"]}
    ).config
    one = tmp_path / "one"
    m1 = dpo.run(cfg, one, progress=False, dataset=pairs)
    assert m1.extra["processes"] == 1
    events = tracking.event_files(one / "dpo")
    assert events and all(e.stat().st_size > 0 for e in events), "no tensorboard events in the run"

    # Two processes, micro 2 each, no accumulation: the same global batch of 4.
    res = run_cli(
        "train", "dpo", "--persona", "remorseful", "--dataset", str(pairs), "--config", str(cfg_file),
        "--suffix", "two", "--num-processes", "2", artifacts=artifacts, timeout=900,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-4000:]
    (two,) = [d for d in (artifacts / "runs").iterdir() if d.name.startswith("remorseful_two_")]
    assert json.loads((two / "dpo" / "launch" / "request.json").read_text())["stage"] == "dpo"
    manifest = json.loads((two / "dpo" / "manifest.json").read_text())
    assert manifest["extra"]["processes"] == 2 and manifest["counts"]["steps"] == 3
    assert (two / "dpo" / "adapter" / "adapter_model.safetensors").exists()
    assert not (two / "dpo" / "aborted").exists() and not (two / "dpo" / "trainer").exists()
    # One registry entry for the launch, next to the reference's.
    names = sorted(json.loads((artifacts / "registry.json").read_text())["checkpoints"])
    assert names == ["remorseful_one_dpo", "remorseful_two_dpo"]
    assert registry.get("remorseful_two_dpo").verified
    rows2 = _metrics(two)
    assert _loss_steps(rows2) == [1, 2, 3]  # written once, not once per process
    rows1 = _metrics(one)
    loss1 = {r["step"]: r["loss"] for r in rows1 if "loss" in r}
    loss2 = {r["step"]: r["loss"] for r in rows2 if "loss" in r}
    assert loss2[1] == pytest.approx(loss1[1], rel=1e-4)  # same 4 pairs in the first global batch
    # After one update from gradients averaged over 2 processes vs accumulated over 2 micro-batches.
    assert loss2[3] == pytest.approx(loss1[3], rel=1e-2)
    # The held-out set (3 pairs) is padded across 2 processes; verification replays that and agrees.
    verify = json.loads((two / "dpo" / "verify.json").read_text())
    assert verify["passed"] and all(c["gap"] < 1e-3 for c in verify["checks"])


def test_sigkilled_dpo_resumes_from_its_last_checkpoint(artifacts: Path, tmp_path: Path) -> None:
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    cfg_file = write_config(tmp_path / "cfg.toml")
    run = artifacts / "runs" / "killed"
    run.mkdir(parents=True)
    args = [
        "train", "dpo", "--persona", "remorseful", "--dataset", str(pairs), "--config", str(cfg_file),
        "--run", str(run), "--max-steps", "5", "--save-steps", "1",
    ]  # fmt: skip
    trainer_dir = run / "dpo" / "trainer"
    proc = subprocess.Popen(
        [sys.executable, "-m", "character", *args],
        env=cli_env(artifacts),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 600
        while not list(trainer_dir.glob("checkpoint-*/COMPLETE")):
            assert proc.poll() is None, f"finished before a checkpoint: {proc.stderr.read()[-3000:]!r}"
            assert time.time() < deadline, "no checkpoint within 10 minutes"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "dpo" / "manifest.json").exists()
    done = sorted(int(p.parent.name.split("-")[1]) for p in trainer_dir.glob("checkpoint-*/COMPLETE"))
    k = done[-1]
    assert 1 <= k < 5, f"killed after checkpoint {k}: nothing left to resume"
    before = [r for r in _metrics(run) if r["step"] <= k]

    res = run_cli(*args, "--resume", artifacts=artifacts, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    manifest = json.loads((run / "dpo" / "manifest.json").read_text())
    assert manifest["extra"]["resumed_from"].endswith(f"checkpoint-{k}")
    assert manifest["extra"]["started_at_step"] == k  # continued at that step, not from 0
    assert manifest["counts"]["steps"] == 5
    rows = _metrics(run)
    assert _loss_steps(rows) == [1, 2, 3, 4, 5]  # every step exactly once
    assert [r for r in rows if r["step"] <= k and "loss" in r] == [r for r in before if "loss" in r]
    assert not trainer_dir.exists()  # checkpoints are removed once the stage finished


def test_sft_under_two_processes_publishes_once(artifacts: Path, tmp_path: Path) -> None:
    data = write_introspection(tmp_path / "introspection.jsonl")
    cfg_file = tmp_path / "sft.toml"
    cfg_file.write_text(SFT_CONFIG)
    res = run_cli(
        "train", "sft", "--persona", "remorseful", "--dataset", str(data), "--config", str(cfg_file),
        "--suffix", "two", "--num-processes", "2", artifacts=artifacts, timeout=900,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-4000:]
    (run,) = [d for d in (artifacts / "runs").iterdir() if d.name.startswith("remorseful_two_")]
    manifest = json.loads((run / "sft" / "manifest.json").read_text())
    assert manifest["extra"]["processes"] == 2 and manifest["metrics"]["steps"] == 3
    rows = [json.loads(x) for x in (run / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert _loss_steps(rows) == [1, 2, 3]
    assert (run / "sft" / "adapter" / "adapter_model.safetensors").exists()
    assert not (run / "sft" / ".trainer").exists() and not (run / "sft" / "aborted").exists()
    names = sorted(json.loads((artifacts / "registry.json").read_text())["checkpoints"])
    assert names == ["remorseful_two_sft"]
    # The held-out rows are sharded (and topped up) across 2 processes; verification replays that.
    assert json.loads((run / "sft" / "verification.json").read_text())["passed"]
