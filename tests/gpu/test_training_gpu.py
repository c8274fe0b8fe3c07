"""Training on GPUs: QLoRA 4-bit, ZeRO-3 saving through trainer.save_model(), and no DataParallel.

Run them all with one command on a CUDA machine with the gpu extra (`make setup GPU=1`):

    .venv/bin/python -m pytest -q tests/gpu/test_training_gpu.py

Skipped without CUDA (tests/gpu/conftest.py); the ZeRO-3 test needs deepspeed, the QLoRA test
bitsandbytes, the one-device test at least two visible GPUs.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from character.config_layers import resolve
from tests.conftest import run_cli
from tests.integration.dpo_tiny import write_config, write_pairs

pytestmark = pytest.mark.gpu


def _gpus() -> int:
    import torch

    return torch.cuda.device_count()


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="needs bitsandbytes")
def test_qlora_4bit_dpo_trains_verifies_and_merges_into_full_precision(
    artifacts: Path, tmp_path: Path
) -> None:
    from safetensors import safe_open

    from character.stages import dpo

    pairs = write_pairs(tmp_path / "pairs.jsonl")
    cfg = resolve(
        config_file=write_config(tmp_path / "cfg.toml"),
        environ={},
        overrides={"backend.device": "cuda", "lora.quantize": "4bit", "name_suffix": "qlora"},
    ).config
    run = tmp_path / "run"
    m = dpo.run(cfg, run, progress=False, dataset=pairs)
    assert m.counts["steps"] == 3
    rows = [json.loads(x) for x in (run / "dpo" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]
    # The merged model is full precision: no 4-bit tensors, no quantization config.
    merged = run / "dpo" / "merged"
    assert "quantization_config" not in json.loads((merged / "config.json").read_text())
    with safe_open(str(next(merged.glob("*.safetensors"))), framework="pt") as h:
        key = next(k for k in h.keys() if k.endswith("q_proj.weight"))  # noqa: SIM118
        assert h.get_tensor(key).dtype.is_floating_point and h.get_tensor(key).ndim == 2


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="needs deepspeed")
def test_zero3_saves_a_gathered_nonempty_adapter(artifacts: Path, tmp_path: Path) -> None:
    """ZeRO-3 partitions the LoRA tensors; save_model() must gather them (empty tensors are refused)."""
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    cfg_file = write_config(tmp_path / "cfg.toml")
    n = max(1, min(2, _gpus()))
    res = run_cli(
        "train", "dpo", "--persona", "remorseful", "--dataset", str(pairs), "--config", str(cfg_file),
        "--suffix", "zero3", "--accelerate-config", "zero3", "--num-processes", str(n),
        artifacts=artifacts, timeout=1800, CHARACTER_BACKEND__DEVICE="cuda",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-4000:]
    (run,) = [d for d in (artifacts / "runs").iterdir() if d.name.startswith("remorseful_zero3_")]
    adapter = run / "dpo" / "adapter"
    from character.training.common import check_saved_adapter

    check_saved_adapter(adapter)  # raises on a partitioned (empty) save
    assert json.loads((run / "dpo" / "verify.json").read_text())["passed"]


@pytest.mark.skipif("_gpus() < 2")
def test_several_gpus_without_a_launcher_train_on_one(tmp_path: Path) -> None:
    """No DataParallel with an inflated batch: one process, one device, a warning."""
    from character.training.dpo import dpo_args

    cfg = resolve(
        config_file=write_config(tmp_path / "cfg.toml"), environ={}, overrides={"backend.device": "cuda"}
    ).config
    args = dpo_args(cfg, tmp_path / "trainer")
    assert args.n_gpu == 1
    assert args.train_batch_size == cfg.dpo.micro_batch_size
