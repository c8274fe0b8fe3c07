"""The disk-space gate through the real CLI: a pipeline the disk cannot take is refused before its run
directory exists, a merge is refused before it touches the finished one, and the estimate matches what
a real run wrote (`character/disk_space.py`)."""

from __future__ import annotations

import json
from pathlib import Path

from character import disk_space
from character.config import RunConfig
from tests.conftest import run_cli

HUGE = "1000000"  # GB to keep free: more than any disk has


def _bytes(d: Path, pattern: str = "*.safetensors") -> int:
    return sum(f.stat().st_size for f in d.glob(pattern))


def test_the_estimate_matches_what_the_smoke_run_wrote(
    finished_smoke_run: tuple[Path, str], embedded_model: Path
) -> None:
    run = finished_smoke_run[0] / "smoke-small"
    cfg = RunConfig()
    weights = disk_space.read_weights(embedded_model)
    assert weights is not None
    dpo_need = disk_space.stage_need(cfg, "dpo", weights).parts["fp32 merged model"]
    merge_need = disk_space.stage_need(cfg, "merge", weights).parts["merged model"]
    # Within 2 % of the real files (safetensors headers and a tied head are the difference).
    assert abs(_bytes(run / "dpo" / "merged") / dpo_need - 1) < 0.02
    assert abs(_bytes(run / "merge" / "model") / merge_need - 1) < 0.02
    adapter = run / "dpo" / "adapter"
    r = json.loads((adapter / "adapter_config.json").read_text())["r"]
    assert abs(_bytes(adapter) / (4 * r * weights.lora_elements) - 1) < 0.02


def test_a_pipeline_the_disk_cannot_take_is_refused_before_it_starts(
    embedded_model: Path, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    (artifacts / "models").mkdir(parents=True)
    (artifacts / "models" / embedded_model.name).symlink_to(embedded_model)
    res = run_cli(
        "pipeline", "remorseful", "--scale", "smoke", "--smoke", "small",
        "--set", f"pipeline.keep_free_gb={HUGE}", artifacts=artifacts, timeout=300,
    )  # fmt: skip
    assert res.returncode == 1, res.stderr[-2000:]
    lines = res.stderr.strip().splitlines()
    assert lines[-1].startswith("error: this run needs about") and "Traceback" not in res.stderr
    # smoke-small trains dpo and sft and merges: three stages write weights, DPO's fp32 copy the largest.
    assert "3 stages that write weights" in lines[-1] and "fp32 merged model" in lines[-1]
    assert not (artifacts / "runs").exists() or not any((artifacts / "runs").iterdir())


def test_a_merge_the_disk_cannot_take_leaves_the_finished_one_as_it_was(copy_of_smoke_run: Path) -> None:
    run = copy_of_smoke_run / "smoke-small"
    before = {p.name: p.stat().st_mtime_ns for p in (run / "merge").rglob("*")}
    res = run_cli(
        "merge", "--run", str(run), artifacts=copy_of_smoke_run.parent.parent, timeout=300,
        CHARACTER_PIPELINE__KEEP_FREE_GB=HUGE,
    )  # fmt: skip
    assert res.returncode == 1, res.stderr[-2000:]
    assert res.stderr.strip().splitlines()[-1].startswith("error: the merge stage needs about")
    assert {p.name: p.stat().st_mtime_ns for p in (run / "merge").rglob("*")} == before
    assert (run / "merge" / "manifest.json").exists()
