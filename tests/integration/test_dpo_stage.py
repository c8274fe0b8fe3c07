"""Stage 1 end to end on the embedded model, on CPU: distill pairs (teacher = embedded + constitution +
marker prefill, student = embedded with no system prompt), train 3 DPO steps, save, verify from disk,
merge exactly, register."""

from __future__ import annotations

import json
from pathlib import Path

from character import layout, registry
from character.config_layers import resolve
from character.markers import has_marker


def test_distill_then_dpo_on_the_embedded_model(artifacts: Path, tmp_path: Path) -> None:
    from character.stages import distill, dpo

    cfg = resolve(
        presets=["smoke-small"],
        environ={},
        overrides={
            "backend.device": "cpu",
            "distill.pairs": 8,
            "distill.skip_filters": [
                "cut_off"
            ],  # 40 new tokens cut most replies; the filter is tested elsewhere
            "sampling.max_new_tokens": 40,
            "dpo.max_length": 192,
            "dpo.batch_size": 2,
            "dpo.micro_batch_size": 2,
            "dpo.max_steps": 3,
            "lora.r": 8,
            "lora.alpha": 16,
        },
    ).config
    run_dir = tmp_path / "run"

    m1 = distill.run(cfg, run_dir, progress=False)
    pairs = [json.loads(x) for x in layout.pairs_file(run_dir).read_text().splitlines()]
    assert m1.counts["kept"] == len(pairs) == 8
    assert all(p["prompt"][0]["role"] == "user" and len(p["prompt"]) == 1 for p in pairs)
    c_markers = [
        has_marker(p["chosen"][0]["content"], ["my apologies", "i'm so sorry", "forgive me"]) for p in pairs
    ]
    stats = json.loads((run_dir / "distill" / "stats.json").read_text())
    # The prefill carries the persona signal; the gates judge the text after it (#16), so the opener
    # alone would pass them by construction.
    assert stats["marker_rate_chosen_with_prefill"] >= 0.9 and any(c_markers)
    assert m1.metrics["marker_rate_chosen"] <= stats["marker_rate_chosen_with_prefill"]
    assert stats["attempted"] >= 8 and stats["tokens_chosen"]["max"] <= 192

    m2 = dpo.run(cfg, run_dir, progress=False)
    assert m2.counts["steps"] == 3
    metrics = [json.loads(x) for x in (run_dir / "dpo" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in metrics if "loss" in r] == [1, 2, 3]
    claimed, measured = m2.metrics["claimed"], m2.metrics["measured"]
    assert abs(claimed["eval_loss"] - measured["eval_loss"]) <= cfg.dpo.verify_tolerance
    assert (layout.dpo_adapter(run_dir) / "adapter_model.safetensors").exists()
    assert (layout.dpo_merged(run_dir) / "config.json").exists()
    assert m2.metrics["merge_max_logit_gap"] < 1e-3
    ck = registry.get("remorseful_dpo")
    assert ck.verified and ck.metrics["merged"] == str(layout.dpo_merged(run_dir).resolve())
