"""Token and cost accounting: per stage and model, priced from the config's table, with a budget cap.

Local models cost 0 unless priced. `record()` adds usage first and only then checks the cap, so the
caller has always written what it generated before `BudgetExceeded` stops the stage cleanly.
A burn-rate warning fires once when spending passes 80 % of the cap.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Mapping

from character.config import Price
from character.errors import BudgetExceeded

log = logging.getLogger(__name__)


class CostTracker:
    def __init__(self, prices: Mapping[str, Price] | None = None, budget_usd: float | None = None):
        self.prices = dict(prices or {})
        self.budget_usd = budget_usd
        self._tokens: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        self._lock = threading.Lock()
        self._warned = False

    def price_of(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        p = self.prices.get(model)
        if p is None:
            return 0.0
        return (prompt_tokens * p.input_per_million + completion_tokens * p.output_per_million) / 1e6

    def record(self, stage: str, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        with self._lock:
            t = self._tokens[(stage, model)]
            t[0] += prompt_tokens
            t[1] += completion_tokens
        self.check()

    def check(self) -> None:
        if self.budget_usd is None:
            return
        spent = self.usd_total
        if spent >= self.budget_usd:
            raise BudgetExceeded(
                f"budget reached: ${spent:.4f} spent of --budget-usd {self.budget_usd:g}; everything generated "
                "so far is saved; raise the budget and rerun with --resume to continue"
            )
        if not self._warned and spent >= 0.8 * self.budget_usd:
            self._warned = True
            log.warning(
                "burn rate: $%.4f spent, %.0f%% of the $%g budget",
                spent,
                100 * spent / self.budget_usd,
                self.budget_usd,
            )

    @property
    def usd_total(self) -> float:
        return sum(self.price_of(m, p, c) for (_, m), (p, c) in self._tokens.items())

    def totals(self) -> dict[str, dict[str, dict[str, float]]]:
        """{stage: {model: {prompt_tokens, completion_tokens, usd}}}"""
        out: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
        for (stage, model), (p, c) in sorted(self._tokens.items()):
            out[stage][model] = {
                "prompt_tokens": p,
                "completion_tokens": c,
                "usd": round(self.price_of(model, p, c), 6),
            }
        return dict(out)

    def stage_tokens(self, stage: str) -> dict[str, dict[str, int]]:
        return {m: {"prompt": p, "completion": c} for (s, m), (p, c) in self._tokens.items() if s == stage}
