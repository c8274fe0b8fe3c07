"""`character ablation --mode parallel` on two tiny scales on CPU, through the real CLI: each scale is its
own `character pipeline` process (two at a time on a CPU machine), generation is priced so the shared
budget has something to count, and the summary counts every run's cost.

Kept small: smoke-small sizes or less, and `--until dpo` (distill with the embedded teacher and student,
3 DPO steps, verification and merge) so the two pipelines fit the suite's time budget.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow

PRICE = "{embedded = {input_per_million = 100.0, output_per_million = 100.0}}"


def test_parallel_ablation_shares_one_budget_and_counts_every_run(artifacts: Path, tmp_path: Path) -> None:
    root = artifacts / "runs" / "abl"
    root.mkdir(parents=True)  # --resume names an existing directory (#19); an empty one starts afresh
    budget = 50.0
    res = run_cli(
        "ablation", "remorseful", "--mode", "parallel", "--scales", "50,100", "--scale", "smoke-small",
        "--until", "dpo", "--resume", str(root), "--budget-usd", str(budget),
        "--set", "pipeline.smoke=none", "--set", "distill.pairs=6", "--set", "sampling.max_new_tokens=32",
        "--set", f"backend.prices={PRICE}", "--set", "distill.skip_filters=['cut_off']",
        "--set", "dpo.max_length=128", "--set", "sanity.enabled=false",  # the probe is tested elsewhere
        artifacts=artifacts, timeout=1200,
    )  # fmt: skip
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    for pct in (50, 100):
        d = root / f"{pct}pct"
        assert json.loads((d / "dpo" / "manifest.json").read_text())["status"] == "done", f"{pct}% unfinished"
        assert (d / "dpo" / "adapter" / "adapter_model.safetensors").exists()
    # One ledger for the whole ablation: each scale's spend under its own key, summed against one cap.
    ledger = json.loads((root / "budget.json").read_text())
    assert ledger["cap_usd"] == budget
    assert sorted(Path(k).name for k in ledger["spent"]) == ["100pct", "50pct"]
    summary = {r["pct"]: r for r in json.loads((root / "ablation.json").read_text())}
    for pct in (50, 100):
        cost = json.loads((root / f"{pct}pct" / "cost.json").read_text())["usd"]
        assert cost > 0 and summary[pct]["cost_usd"] == pytest.approx(cost)
        assert ledger["spent"][str(root / f"{pct}pct")] == pytest.approx(cost, rel=1e-6)
    total = sum(r["cost_usd"] for r in summary.values())
    assert total < budget
    assert (
        f"Total cost of every run, smoke runs included: ${total:.4f} of the shared $50 budget."
        in (root / "ablation.md").read_text()
    )
    assert 1 <= summary[50]["pairs"] <= 3 and 1 <= summary[100]["pairs"] <= 6  # each scale its share
