"""The eval stage on a run directory: base (embedded) vs the run's final model, no system prompt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from character import registry
from character.config import RunConfig
from character.errors import UsageError
from character.manifest import Manifest, read_manifest, write_manifest
from character.stages import eval as eval_stage


def _fake_dpo_output(run_dir: Path, model: Path) -> Path:
    """A finished dpo stage whose merged model is `model` (the tiny random model)."""
    d = run_dir / "dpo"
    d.mkdir(parents=True)
    (d / "merged").symlink_to(model, target_is_directory=True)
    write_manifest(d, Manifest(stage="dpo", config_hash="test").finish())
    return d / "merged"


def test_eval_stage_writes_markers_audit_and_manifest(
    artifacts: Path, tiny_model: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with pytest.raises(UsageError, match="no finished merge, sft or dpo output"):
        eval_stage.final_model(run_dir)
    merged = _fake_dpo_output(run_dir, tiny_model)
    registry.register(
        registry.Checkpoint(
            name="remorseful_dpo", path=str(merged), persona="remorseful", stage="dpo", base="embedded"
        )
    )
    cfg = RunConfig()
    cfg.eval.heldout_prompts = 3
    cfg.eval.max_new_tokens = 12
    cfg.robustness.enabled = False  # its own tests: tests/integration/test_robustness.py
    cfg.eval.probe_items, cfg.eval.probe_max_new_tokens = 4, 8  # forgetting: tests/unit/test_forgetting.py
    m = eval_stage.run(cfg, run_dir, progress=False)
    assert read_manifest(run_dir / "eval") is not None and m.counts == {"prompts": 3, "replies": 6}
    markers = json.loads((run_dir / "eval" / "markers.json").read_text())
    assert markers["final_kind"] == "dpo/merged" and markers["system_prompt"] is None
    assert markers["before"]["n"] == markers["after"]["n"] == 3
    assert {"marker_rate", "markers_per_100_words", "opener_only_rate", "sustained_rate"} <= set(
        markers["after"]
    )
    audit = json.loads((run_dir / "eval" / "audit.json").read_text())
    assert 0 <= audit["before"]["score"] <= 100 and 0 <= audit["after"]["score"] <= 100
    rows = [json.loads(x) for x in (run_dir / "eval" / "replies.jsonl").read_text().splitlines()]
    assert {r["side"] for r in rows} == {"before", "after"} and len(rows) == 6
    # Held-out prompts: never the constitution's training questions.
    from character.constitutions import load_constitution

    questions = set(load_constitution("remorseful").questions())
    assert not questions & {r["prompt"] for r in rows}
    # The run report reads the same numbers; the registry entry gains them.
    from character.report import marker_rates

    assert marker_rates(run_dir)["after"] == markers["marker_rate_after"]
    assert "eval_audit_after" in registry.get("remorseful_dpo").metrics
    # Forgetting before/after and the prompt-only baseline, in every run's eval (#13).
    forgetting = json.loads((run_dir / "eval" / "forgetting.json").read_text())
    assert set(forgetting["probes"]) == {"before", "after", "prompt_only"} and forgetting["probe_items"] == 4
    assert m.metrics["probe_verdict"] == "insufficient evidence" and "forgetting.json" in m.outputs
