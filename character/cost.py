"""Token and cost accounting: per stage, model and role, priced from the config's table, with a budget cap.

Roles (teacher, student, introspect, judge, classifier) are optional: `totals()` sums over them (the
`{stage: {model: ...}}` shape every reader knows) and `by_role()` splits them out for `cost.json`
and the report, so a remote teacher's bill is told apart from the local student's.

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
        self._tokens: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
        self._lock = threading.Lock()
        self._warned = False

    def price_of(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        p = self.prices.get(model)
        if p is None:
            return 0.0
        return (prompt_tokens * p.input_per_million + completion_tokens * p.output_per_million) / 1e6

    def record(
        self, stage: str, model: str, prompt_tokens: int, completion_tokens: int, *, role: str | None = None
    ) -> None:
        with self._lock:
            t = self._tokens[(stage, model, role or "")]
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
        return sum(self.price_of(m, p, c) for (_, m, _), (p, c) in self._tokens.items())

    def _summed(self, key: tuple[int, ...]) -> dict[tuple[str, ...], list[int]]:
        out: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0])
        with self._lock:
            for k, (p, c) in self._tokens.items():
                t = out[tuple(k[i] for i in key)]
                t[0] += p
                t[1] += c
        return out

    def _row(self, model: str, p: int, c: int) -> dict[str, float]:
        return {"prompt_tokens": p, "completion_tokens": c, "usd": round(self.price_of(model, p, c), 6)}

    def totals(self) -> dict[str, dict[str, dict[str, float]]]:
        """{stage: {model: {prompt_tokens, completion_tokens, usd}}} (all roles together)"""
        out: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
        for (stage, model), (p, c) in sorted(self._summed((0, 1)).items()):
            out[stage][model] = self._row(model, p, c)
        return dict(out)

    def by_role(self) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
        """{stage: {role: {model: {prompt_tokens, completion_tokens, usd}}}}; role "" = not given."""
        out: dict[str, dict[str, dict[str, dict[str, float]]]] = defaultdict(lambda: defaultdict(dict))
        for (stage, model, role), (p, c) in sorted(self._tokens.items()):
            out[stage][role][model] = self._row(model, p, c)
        return {s: dict(r) for s, r in out.items()}

    def stage_tokens(self, stage: str) -> dict[str, dict[str, int]]:
        return {
            m: {"prompt": p, "completion": c} for (s, m), (p, c) in self._summed((0, 1)).items() if s == stage
        }

    def role_tokens(self, stage: str) -> dict[str, dict[str, dict[str, int]]]:
        """{role: {model: {prompt, completion}}} of one stage (what a manifest records per role)."""
        out: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
        for (s, m, r), (p, c) in self._tokens.items():
            if s == stage and r:
                out[r][m] = {"prompt": p, "completion": c}
        return dict(out)

    def as_json(self) -> dict[str, object]:
        """What `cost.json` holds: totals per stage and model, the same split by role, and the USD sum."""
        return {"stages": self.totals(), "roles": self.by_role(), "usd": round(self.usd_total, 6)}
