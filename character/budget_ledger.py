"""One budget shared by several processes: the parallel ablation's scales spend from one --budget-usd.

The ablation writes `budget.json` in its directory and gives every scale's process its path in
`CHARACTER_BUDGET_LEDGER`. Each process's runner then uses a `SharedBudgetTracker`: on every
`record()` it publishes its run's total spend so far (earlier sub-runs, smoke runs included, plus the
current one) under its run directory's key, under an exclusive file lock, and reads the sum over all
keys. Once that sum reaches the cap, `BudgetExceeded` stops the stage cleanly, as with one process (the
caller has already written what it generated). Publishing a total rather than adding a delta keeps a
resumed run from counting what it re-seeds twice.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from character.config import Price
from character.cost import CostTracker
from character.errors import BudgetExceeded

log = logging.getLogger(__name__)

ENV = "CHARACTER_BUDGET_LEDGER"


class Ledger:
    """`{"cap_usd": X, "spent": {run key: usd}}` in one JSON file, read and written under flock."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def create(cls, path: Path, cap_usd: float | None) -> Ledger:
        ledger = cls(path)
        with ledger._locked() as data:
            data["cap_usd"] = cap_usd
            data.setdefault("spent", {})
        return ledger

    def _locked(self):  # type: ignore[no-untyped-def]
        ledger = self

        class _Ctx:
            def __enter__(self) -> dict:
                ledger.path.parent.mkdir(parents=True, exist_ok=True)
                self.f = open(ledger.path.with_suffix(".lock"), "a+")
                fcntl.flock(self.f, fcntl.LOCK_EX)
                try:
                    self.data = json.loads(ledger.path.read_text())
                except (OSError, json.JSONDecodeError):
                    self.data = {"cap_usd": None, "spent": {}}
                return self.data

            def __exit__(self, *exc: object) -> None:
                try:
                    if exc[0] is None:
                        tmp = ledger.path.with_suffix(".tmp")
                        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True) + "\n")
                        os.replace(tmp, ledger.path)
                finally:
                    fcntl.flock(self.f, fcntl.LOCK_UN)
                    self.f.close()

        return _Ctx()

    def publish(self, key: str, usd: float) -> float:
        """Set `key`'s spend to `usd`; return the total over every key."""
        with self._locked() as data:
            data.setdefault("spent", {})[key] = round(float(usd), 8)
            return float(sum(data["spent"].values()))

    def read(self) -> dict:
        with self._locked() as data:
            return dict(data)


class SharedBudgetTracker(CostTracker):
    """A CostTracker whose cap applies to the sum of every process that shares the ledger."""

    def __init__(
        self,
        prices: Mapping[str, Price] | None,
        cap_usd: float,
        ledger: Ledger,
        key: str,
        spent_before: float = 0.0,
    ):
        super().__init__(prices, None)
        self.cap_usd = cap_usd
        self.ledger = ledger
        self.key = key
        self.spent_before = spent_before
        self._shared_warned = False

    def check(self) -> None:
        total = self.ledger.publish(self.key, self.spent_before + self.usd_total)
        if total >= self.cap_usd:
            raise BudgetExceeded(
                f"budget reached: ${total:.4f} spent by all parallel runs together of --budget-usd "
                f"{self.cap_usd:g} (ledger {self.ledger.path}); everything generated so far is saved; raise "
                "the budget and rerun the ablation with --resume"
            )
        if not self._shared_warned and total >= 0.8 * self.cap_usd:
            self._shared_warned = True
            log.warning("burn rate: $%.4f of the shared $%g budget spent by all runs", total, self.cap_usd)


def tracker(
    prices: Mapping[str, Price] | None,
    remaining_usd: float | None,
    *,
    cap_usd: float | None,
    key: str,
    spent_before: float,
) -> CostTracker:
    """The runner's tracker: shared through the ledger named in CHARACTER_BUDGET_LEDGER when there is
    one and a cap, else a plain CostTracker with what is left of this run's own budget."""
    path = os.environ.get(ENV)
    if path and cap_usd is not None:
        return SharedBudgetTracker(prices, cap_usd, Ledger(Path(path)), key, spent_before)
    return CostTracker(prices, remaining_usd)
