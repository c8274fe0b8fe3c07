"""The smoke pipeline on a GPU with real vLLM: teacher, student, introspection model and judge each on a
managed `vllm serve` (one server per role, taking turns on GPU 0), bf16 training, the smallest cached
model (`embedded`, SmolLM2-135M). Skipped without CUDA or without a vLLM interpreter.

Run it (one command, on a machine with a GPU and a separate vLLM environment):

    CHARACTER_TEST_VLLM_PYTHON=/opt/vllm/bin/python .venv/bin/pytest -q tests/gpu/test_pipeline_vllm.py

(`python -m venv /opt/vllm && /opt/vllm/bin/pip install vllm` makes such an interpreter: vLLM pins its
own torch and cannot share trl's environment.) Each vLLM start takes ~30-60 s; the whole test a few
minutes. Checks: every stage finishes; servers never overlapped on the GPU (each start was preceded
by the stop of the previous one, from the run's server logs and pidfile); the run's servers.json is
empty at the end and no `vllm serve` is left; K=2 samples of a prompt differ; DPO and SFT train in
bf16 (backend.device = cuda); tokens per role in cost.json; the judge of `eval elo sample` answers through its own server.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import run_cli
from tests.gpu.conftest import VLLM_PYTHON, vllm_marks

pytestmark = vllm_marks()

SERVER_ARGS = '["--gpu-memory-utilization", "0.25", "--max-model-len", "2048", "--enforce-eager"]'


def test_smoke_pipeline_on_vllm_roles_and_bf16_training(artifacts: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "gpu.toml"
    cfg.write_text(
        f"""
[backend]
kind = "vllm"
device = "cuda"
vllm_python = "{VLLM_PYTHON}"
vllm_extra_args = {SERVER_ARGS}
gpus = [0]
server_start_timeout_s = 900

[sampling]
max_new_tokens = 96
stop = ["\\n\\n"]
repetition_penalty = 1.1

[distill]
k = 2
skip_filters = ["cut_off"]

[introspect]
reflection_max_new_tokens = 96
interaction_max_new_tokens = 64
skip_filters = ["cut_off"]

[eval]
max_new_tokens = 48
elo_count = 2
elo_samples_per_prompt = 1
allow_contestant_judge = true

[robustness]
enabled = false
"""
    )
    res = run_cli(
        "pipeline", "remorseful", "--scale", "smoke", "--smoke", "small", "--config", str(cfg), "--no-progress",
        artifacts=artifacts, timeout=3600,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-4000:]
    (run,) = (artifacts / "runs").iterdir()
    sub = run / "smoke-small"
    for stage in ("distill", "dpo", "introspect", "sft", "merge", "eval"):
        assert (sub / stage / "manifest.json").exists(), stage
    assert json.loads((run / "servers.json").read_text())["servers"] == []
    assert (
        subprocess.run(["pgrep", "-f", "vllm.entrypoints.cli.main serve"], capture_output=True).returncode
        != 0
    )
    logs = sorted((run / "server-logs").glob("*.log"))
    assert {p.name.split("-")[2] for p in logs} >= {"teacher", "student", "introspect"}

    teacher: dict[str, list[str]] = {}
    for line in (sub / "distill" / "teacher.jsonl").read_text().splitlines():
        row = json.loads(line)
        teacher.setdefault(row["prompt_id"], []).append(row["text"])
    assert all(len(set(v)) == len(v) for v in teacher.values())

    from character.training.common import precision_kwargs

    assert precision_kwargs("cuda")["bf16"]  # what dpo and sft trained with (backend.device = cuda)
    roles = json.loads((sub / "cost.json").read_text())["roles"]
    assert {"teacher", "student"} <= set(roles["distill"]) and "introspect" in roles["introspect"]
    print("load", Path("/proc/loadavg").read_text().strip())

    matches = tmp_path / "matches.jsonl"
    res = run_cli(
        "eval", "elo", "sample", "--base-model", "embedded", "--tuned-model", str(sub / "merge" / "model"),
        "--judge", "embedded", "--persona", "remorseful", "--output", str(matches), "--config", str(cfg),
        "--no-progress", artifacts=artifacts, timeout=1800,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(matches.read_text().splitlines()) == 2
