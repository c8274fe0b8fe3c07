"""Managed vLLM servers, one per role, with a stand-in for `vllm serve` at the process boundary
(tests/fakes/fake_vllm.py: vLLM's command line in, vLLM's HTTP API out, transformers + PEFT on CPU),
launched exactly as vLLM is: through `backend.vllm_python -m vllm.entrypoints.cli.main serve ...`.

- Teacher and student on the same GPU: the distill stage runs a teacher pass, the teacher's server
  stops, then the student's starts (never both up), each with CUDA_VISIBLE_DEVICES from its role; the
  K=2 samples of a prompt are distinct draws; tokens are counted per role.
- Teacher and student on GPUs 0 and 1: both servers up at once on two ports. The pipeline is
  SIGKILLed with both up; the orphans hold their ports; `--resume` reaps them and finishes the stage.
- LoRA: the server is started with `--enable-lora --lora-modules dpo=PATH`, lists exactly the base and
  the adapter, and answers through both.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from character.backends import lifecycle
from character.backends.server import port_is_free
from tests.conftest import ROOT, cli_env, run_cli
from tests.fakes.fake_vllm import write_vllm_python


def events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def write_config(tmp_path: Path, embedded_model: Path, student_gpus: list[int]) -> Path:
    """Teacher `embedded`, student the same weights by path (two models: two engines)."""
    vllm_python = write_vllm_python(tmp_path)
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        f"""
[models]
teacher = "embedded"
student = "{embedded_model}"

[backend]
kind = "vllm"
vllm_python = "{vllm_python}"
server_start_timeout_s = 180
timeout_s = 120

[roles.teacher]
gpus = [0]

[roles.student]
gpus = {student_gpus}

[sampling]
temperature = 1.0
max_new_tokens = 24
stop = ["\\n\\n"]
repetition_penalty = 1.1

[distill]
pairs = 4
k = 2
save_every = 2
max_attempts_factor = 4.0
skip_filters = ["cut_off"]
min_chosen_marker_rate = 0.0
min_marker_gap = -1.0
max_chosen_refusal_rate = 1.0
min_kept_rate = 0.0
prompt_shortfall = "cycle"
"""
    )
    return cfg


def pairs_by_prompt(run: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for line in (run / "distill" / "pairs.jsonl").read_text().splitlines():
        row = json.loads(line)
        out.setdefault(row["prompt_id"], []).append(row)
    return out


def test_roles_sharing_a_gpu_take_turns(
    artifacts: Path, embedded_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from character.config_layers import resolve
    from character.stages import distill

    log = tmp_path / "events.jsonl"
    monkeypatch.setenv("FAKE_VLLM_EVENTS", str(log))
    cfg = resolve(config_file=write_config(tmp_path, embedded_model, [0]), environ={}).config
    run = tmp_path / "run"
    with lifecycle.use_pidfile(run / "servers.json"):
        m = distill.run(cfg, run, progress=False)
    assert m.extra["phased"] is True and m.counts["kept"] == 4
    ev = events(log)
    assert [e["event"] for e in ev[:4]] == ["ready", "stop", "ready", "stop"]
    assert ev[0]["served"] == "embedded" and ev[2]["served"] == str(embedded_model)
    assert {e["cuda"] for e in ev} == {"0"}
    up: set[int] = set()
    for e in ev:  # never two servers on GPU 0 at once
        (up.add if e["event"] == "ready" else up.discard)(e["pid"])
        assert len(up) <= 1
    assert up == set() and lifecycle.read_pidfile(run / "servers.json") == []
    # K=2: the two samples of a prompt are two draws (one seed per request), on both sides.
    twice = [rows for rows in pairs_by_prompt(run).values() if len(rows) == 2]
    assert twice, "no prompt kept both of its samples"
    for a, b in twice:
        assert a["chosen"] != b["chosen"] and a["rejected"] != b["rejected"]
    roles = m.extra["role_tokens"]
    assert roles["teacher"]["embedded"]["completion"] > 0
    assert roles["student"][str(embedded_model)]["completion"] > 0


def test_sigkilled_pipeline_orphans_are_reaped_by_resume(
    artifacts: Path, embedded_model: Path, tmp_path: Path
) -> None:
    log = tmp_path / "events.jsonl"
    config = write_config(tmp_path, embedded_model, [1])
    args = ["pipeline", "remorseful", "--smoke", "none", "--until", "distill", "--no-progress"]
    env = cli_env(artifacts, FAKE_VLLM_EVENTS=str(log), FAKE_VLLM_DELAY_S="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "character.cli", *args, "--config", str(config)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while sum(e["event"] == "ready" for e in events(log)) < 2:
            assert proc.poll() is None, "the pipeline ended before both servers were up"
            assert time.monotonic() < deadline, f"servers never came up: {events(log)}"
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)  # no finally, no atexit: the servers are orphaned
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    (run,) = (artifacts / "runs").iterdir()
    servers = lifecycle.read_pidfile(run / "servers.json")
    assert sorted(s["role"] for s in servers) == ["student", "teacher"]
    ready = [e for e in events(log) if e["event"] == "ready"]
    assert len({e["port"] for e in ready}) == 2 and sorted(e["cuda"] for e in ready) == ["0", "1"]
    for s in servers:  # both still up, holding their ports
        assert lifecycle.alive(s["pid"], s["start"]) and not port_is_free("127.0.0.1", s["port"])

    res = run_cli(
        "pipeline", "remorseful", "--resume", str(run), "--until", "distill", "--no-progress",
        artifacts=artifacts, timeout=600, FAKE_VLLM_EVENTS=str(log),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stderr.count("reaped an orphan vllm serve server") == 2, res.stderr[-3000:]
    for s in servers:
        assert not lifecycle.alive(s["pid"], s["start"])
    assert lifecycle.read_pidfile(run / "servers.json") == []
    assert (run / "distill" / "manifest.json").exists()
    cost = json.loads((run / "cost.json").read_text())
    assert set(cost["roles"]["distill"]) == {"teacher", "student"}
    assert all(not lifecycle.alive(e["pid"], None) for e in events(log))


def test_lora_modules_are_served_and_checked(
    artifacts: Path, embedded_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from character.backends import GenerationRequest, SamplingParams
    from character.backends.base import make_backend
    from character.config import RunConfig

    adapter = tmp_path / "dpo"
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(embedded_model)
    lora = LoraConfig(r=8, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, lora).save_pretrained(str(adapter))
    monkeypatch.setenv("FAKE_VLLM_EVENTS", str(tmp_path / "events.jsonl"))
    cfg = RunConfig()
    cfg.backend.kind = "vllm"
    cfg.backend.vllm_python = str(write_vllm_python(tmp_path))
    cfg.roles.introspect.gpus = [2]
    cfg.lora.r = 12
    backend: Any = make_backend(cfg, "embedded", adapters={"dpo": str(adapter)}, role="introspect")
    try:
        params = SamplingParams(temperature=0, max_new_tokens=12)
        msgs = [{"role": "user", "content": "What is the capital of France?"}]
        out = backend.generate(
            [GenerationRequest(msgs, params), GenerationRequest(msgs, params, adapter="dpo")], progress=False
        )
        argv = " ".join(backend.server.cmd)
        assert (
            "--enable-lora" in argv
            and f"--lora-modules dpo={adapter}" in argv
            and "--max-lora-rank 16" in argv
        )
        assert backend.model_check.method == "list" and backend.model_check.served == ["dpo", "embedded"]
        assert out[0][0].text and out[0][0].text != out[1][0].text  # the adapter changes greedy output
        assert events(tmp_path / "events.jsonl")[0]["cuda"] == "2"
    finally:
        backend.close()
