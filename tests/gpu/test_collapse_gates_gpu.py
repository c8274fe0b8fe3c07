"""The collapse gates and the sanity probe on CUDA (bf16 training, probe on the GPU). Skipped without CUDA.

    .venv/bin/pytest -q tests/gpu/test_collapse_gates_gpu.py

In bf16 an absurd learning rate may overflow to NaN instead of collapsing to finite garbage; either
way the run must stop at once with nothing registered. A sane run must pass the probe on the GPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from character import layout, registry
from character.config import RunConfig
from character.errors import TrainingAborted
from character.manifest import read_manifest
from character.records import write_jsonl
from tests.integration.test_collapse_gates import pairs

pytestmark = pytest.mark.gpu


def _cfg(**dpo: object) -> RunConfig:
    cfg = RunConfig()
    cfg.backend.device = "cuda"
    for k, v in {"batch_size": 4, "micro_batch_size": 4, "max_length": 128, "max_steps": 6, **dpo}.items():
        setattr(cfg.dpo, k, v)
    return cfg


def test_dpo_at_lr_1e4_in_bf16_is_stopped_and_not_registered(artifacts: Path) -> None:
    from character.stages import dpo

    run = artifacts / "runs" / "gpu-collapse"
    write_jsonl(layout.pairs_file(run), pairs())
    with pytest.raises(TrainingAborted, match=r"(collapse|non-finite).*lower dpo.learning_rate"):
        dpo.run(_cfg(learning_rate=1e4), run, progress=False)
    assert (run / "dpo" / "aborted" / "REASON.txt").exists()
    assert read_manifest(run / "dpo") is None and registry.find("remorseful_dpo") is None


def test_sane_dpo_passes_the_probe_on_the_gpu(artifacts: Path) -> None:
    from character.stages import dpo

    run = artifacts / "runs" / "gpu-sane"
    write_jsonl(layout.pairs_file(run), pairs())
    dpo.run(_cfg(max_steps=4), run, progress=False)
    sanity = json.loads((run / "dpo" / "sanity.json").read_text())
    assert sanity["passed"] is True and 0.5 < sanity["nll_ratio"] < 1.5
    assert registry.get("remorseful_dpo").verified
