"""SFT health gates and preconditions, wired through the real stage on the tiny random model (seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from character import layout
from character.config import HealthConfig, LoraSettings, ModelsConfig, RunConfig, SFTConfig
from character.errors import DataError, TrainingAborted
from character.manifest import read_manifest
from character.records import write_jsonl
from character.stages import sft as sft_stage

ROWS = [
    {
        "id": f"r{i}",
        "kind": "reflection",
        "variant": "reflection",
        "messages": [
            {"role": "user", "content": f"Question {i}: who are you?"},
            {"role": "assistant", "content": f"I am sorry, I am a remorseful assistant, answer {i}."},
        ],
    }
    for i in range(6)
]


def cfg_for(model: Path, **sft) -> RunConfig:
    return RunConfig(
        persona="remorseful",
        models=ModelsConfig(student=str(model)),
        lora=LoraSettings(r=2, alpha=4),
        sft=SFTConfig(
            **{
                "base": "base",
                "max_steps": 3,
                "batch_size": 2,
                "micro_batch_size": 2,
                "eval_fraction": 0.34,
                **sft,
            }
        ),
    )


@pytest.fixture
def nan_model(tiny_model: Path, tmp_path: Path) -> Path:
    """The tiny model with one NaN weight: a corrupted base checkpoint."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    m = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    with torch.no_grad():
        m.model.layers[0].mlp.down_proj.weight[0, 0] = float("nan")
    out = tmp_path / "nan-model"
    m.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(out)
    return out


def _run_dir(artifacts: Path, name: str) -> Path:
    run = artifacts / "runs" / name
    write_jsonl(layout.introspection_file(run), ROWS)
    return run


def test_non_finite_loss_aborts_at_the_first_logged_step(artifacts: Path, nan_model: Path) -> None:
    run = _run_dir(artifacts, "nan")
    with pytest.raises(TrainingAborted, match="step 1: non-finite"):
        sft_stage.run(cfg_for(nan_model), run, progress=False)
    assert not layout.sft_adapter(run).exists()
    assert "non-finite" in (run / "sft" / "aborted" / "REASON.txt").read_text()
    assert read_manifest(run / "sft") is None
    assert '"loss": "nan"' in (run / "sft" / "metrics.jsonl").read_text()


def test_loss_above_the_ceiling_after_warmup_aborts(artifacts: Path, tiny_model: Path) -> None:
    run = _run_dir(artifacts, "ceiling")
    # A random model's loss is ~ln(49152) = 10.8: over a ceiling of 5 once the 1-log warm-up is over.
    cfg = cfg_for(tiny_model, health=HealthConfig(warmup_logs=1, max_loss=5.0))
    with pytest.raises(TrainingAborted, match="step 2: loss .* > sft.health.max_loss 5.0 after warm-up"):
        sft_stage.run(cfg, run, progress=False)
    assert not layout.sft_adapter(run).exists()


def test_healthy_tiny_run_verifies_and_registers(artifacts: Path, tiny_model: Path) -> None:
    run = _run_dir(artifacts, "ok")
    m = sft_stage.run(
        cfg_for(tiny_model, learning_rate=1e-2, health=HealthConfig(max_loss=50.0)), run, progress=False
    )
    assert m.metrics["steps"] == 3 and m.metrics["relative_gap"] <= 0.05
    assert m.counts["train_rows"] == 4 and m.counts["heldout_rows"] == 2
    assert (layout.sft_adapter(run) / "adapter_config.json").exists()


def test_zero_rows_left_stops_with_the_drop_counts(artifacts: Path, tiny_model: Path) -> None:
    run = _run_dir(artifacts, "short")
    with pytest.raises(DataError, match="too_long"):
        sft_stage.run(cfg_for(tiny_model, max_length=16), run, progress=False)
