"""The eval stage's forgetting measurement on tiny random models: probes on base, prompt-only base and
final, the paired verdict (honestly "insufficient evidence" at 8 items), the prompt-only baseline's
replies with the constitution as system prompt, the flat manifest metrics and the report row."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from character.config import RunConfig
from character.constitutions import load_constitution
from character.eval import forgetting
from character.eval.target import resolve_target
from tests.unit.test_registry_promotion import make_model


def _measure(
    cfg: RunConfig, tiny_model: Path, tmp_path: Path, prompts: list[tuple[str, str]]
) -> dict[str, Any]:
    """forgetting.measure at 8 probes of 3 tokens: the tiny model before, a perturbed copy after."""
    final = make_model(tiny_model, tmp_path / "final", 0.5)
    cfg.eval.probe_items = 8
    cfg.eval.probe_max_new_tokens = cfg.eval.max_new_tokens = 3
    c = load_constitution("remorseful")
    target = resolve_target
    return forgetting.measure(
        cfg, c, target(str(tiny_model)), target(str(final)), prompts, tmp_path / "eval", progress=False
    )


def test_forgetting_measures_three_models_and_says_when_evidence_is_thin(
    artifacts: Path, tiny_model: Path, tmp_path: Path
) -> None:
    c = load_constitution("remorseful")
    out = tmp_path / "eval"
    metrics = _measure(
        RunConfig(), tiny_model, tmp_path, [("p1", "How do I boil an egg?"), ("p2", "Name a colour.")]
    )
    doc = json.loads((out / forgetting.FILENAME).read_text())
    assert doc["probe_items"] == 8 and set(doc["probes"]) == {"before", "after", "prompt_only"}
    assert all(len(side["items"]) == 8 for side in doc["probes"].values())
    kinds = {i["kind"] for i in doc["probes"]["before"]["items"]}
    assert kinds == {"arithmetic", "factual", "instruction", "format"}  # drawn evenly, not the first 8 lines
    assert doc["capability"]["verdict"] == "insufficient evidence" and doc["capability"]["n"] == 8
    assert c.trait_lines()[0] in doc["prompt_only_system"]  # the constitution is the system prompt
    assert [r["prompt_id"] for r in doc["prompt_only_replies"]] == ["p1", "p2"]
    assert metrics["probe_verdict"] == "insufficient evidence" and metrics["probe_items"] == 8
    assert {"probe_accuracy_before", "probe_accuracy_after", "probe_accuracy_prompt_only"} <= set(metrics)
    row = forgetting.report_row("main", out)
    assert row is not None and row.startswith("| main |") and "insufficient evidence (n=8)" in row
    assert forgetting.report_row("main", tmp_path / "nothing") is None


def test_without_the_prompt_only_baseline_two_models_answer_and_the_report_says_not_run(
    artifacts: Path, tiny_model: Path, tmp_path: Path
) -> None:
    cfg = RunConfig()
    cfg.eval.prompt_only_baseline = False
    out = tmp_path / "eval"
    metrics = _measure(cfg, tiny_model, tmp_path, [("p1", "How do I boil an egg?")])
    doc = json.loads((out / forgetting.FILENAME).read_text())
    assert set(doc["probes"]) == {"before", "after"} and "capability_prompt_only" not in doc
    assert not any("prompt_only" in k for k in metrics) and metrics["probe_items"] == 8
    row = forgetting.report_row("main", out)
    assert row is not None and row.count("not run") == 2
