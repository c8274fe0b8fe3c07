"""Parallel ablation pieces: GPU groups and the queue they imply, one budget shared by real processes
through the ledger, and a scale's cost counting its smoke runs."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest

from character.ablation import run_cost, write_summary
from character.ablation_parallel import gpu_groups
from character.budget_ledger import Ledger, SharedBudgetTracker
from character.config import Price
from character.errors import BudgetExceeded, ConfigError


def test_gpu_groups_split_the_gpus_and_queue_the_rest() -> None:
    g8 = [str(i) for i in range(8)]
    assert gpu_groups(g8, 4, 0, 0) == [["0", "1"], ["2", "3"], ["4", "5"], ["6", "7"]]
    assert gpu_groups(g8[:2], 4, 0, 0) == [["0"], ["1"]]  # 4 scales queue on 2 GPUs, 2 at a time
    assert gpu_groups(g8, 2, 1, 0) == [[str(i)] for i in range(8)]
    assert gpu_groups(g8, 4, 2, 1) == [["0", "1"]]  # concurrency caps the groups
    assert gpu_groups(["3", "5"], 2, 0, 0) == [["3"], ["5"]]  # CUDA_VISIBLE_DEVICES ids are handed on
    assert gpu_groups([], 4, 0, 0) == [[], []]  # CPU: two at a time
    assert gpu_groups([], 1, 0, 0) == [[]]
    with pytest.raises(ConfigError, match="ablation_gpus_per_run = 4 but only 2"):
        gpu_groups(["0", "1"], 2, 4, 0)


def _spend(ledger: str, key: str, n: int, out: mp.Queue) -> None:
    tracker = SharedBudgetTracker(
        {"m": Price(output_per_million=1_000_000.0)}, 10.0, Ledger(Path(ledger)), key
    )
    spent = 0
    try:
        for _ in range(n):
            tracker.record("distill", "m", 0, 1)  # $1 each
            spent += 1
    except BudgetExceeded:
        out.put((key, spent, "stopped"))
        return
    out.put((key, spent, "done"))


def test_one_budget_is_shared_by_processes(tmp_path: Path) -> None:
    """Two scales each want $8 of a $10 budget: together they stop at the cap, not at 2 x $10."""
    ledger = Ledger.create(tmp_path / "budget.json", 10.0)
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_spend, args=(str(ledger.path), k, 8, out)) for k in ("25pct", "50pct")]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    total = sum(json.loads(ledger.path.read_text())["spent"].values())
    # Each process records, then checks: each may finish the one record in flight when the other
    # reached the cap. Unshared, each would have spent its $8 (total $16) and neither would stop.
    assert 10.0 <= total <= 11.0
    assert "stopped" in [r[2] for r in results]  # a process that finished first may not have hit the cap


def test_a_resumed_run_publishes_its_total_not_a_second_copy(tmp_path: Path) -> None:
    ledger = Ledger.create(tmp_path / "budget.json", 100.0)
    prices = {"m": Price(output_per_million=1_000_000.0)}
    first = SharedBudgetTracker(prices, 100.0, ledger, "run-a")
    first.record("distill", "m", 0, 3)
    again = SharedBudgetTracker(prices, 100.0, ledger, "run-a", spent_before=0.0)
    again.record("distill", "m", 0, 3)  # the runner re-seeds a finished stage's tokens on resume
    assert ledger.read()["spent"] == {"run-a": 3.0}


def _cost(d: Path, usd: float) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "cost.json").write_text(json.dumps({"usd": usd, "stages": {}}))


def test_a_scales_cost_counts_its_smoke_runs_and_the_summary_totals_them(tmp_path: Path) -> None:
    root = tmp_path / "abl"
    _cost(root / "25pct", 1.0)
    _cost(root / "25pct" / "smoke-small", 0.25)
    _cost(root / "25pct" / "smoke-large", 0.5)
    _cost(root / "50pct", 2.0)
    assert run_cost(root / "25pct") == pytest.approx(1.75)
    Ledger.create(root / "budget.json", 5.0)
    rows = write_summary(root, [25, 50], "parallel")
    assert [r["cost_usd"] for r in rows] == pytest.approx([1.75, 2.0])
    assert (
        "Total cost of every run, smoke runs included: $3.7500 of the shared $5 budget."
        in (root / "ablation.md").read_text()
    )
