"""The running filter ledger and the kill criteria.

Every generated reply that goes through the filters is one *sample*: a reflection, or one turn of a
self-interaction (a regenerated turn counts again). The ledger counts samples, kept samples and drops
by reason for each kind, keeps three examples per reason, and every `every` samples of a kind checks
the last `every` of them: a kept rate below `min_kept_rate`, or one reason above `max_reason_share`,
stops the stage with a `GateError` naming the top reasons with three examples each. The seed runs went
on for hours producing 54.6 % corrupt data; the window (not the running total) makes the check react
to a model that degrades mid-run, and lets a resumed run that fixed its sampling recover.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from dataclasses import dataclass, field

from character.errors import GateError

log = logging.getLogger(__name__)

EXAMPLES_PER_REASON = 3
EXAMPLE_CHARS = 160


def clip(text: str, n: int = EXAMPLE_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[: n - 1] + "…"


@dataclass
class KindCounts:
    samples: int = 0
    kept: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    window: deque[tuple[str | None, str]] = field(default_factory=deque)
    next_check: int = 0

    @property
    def kept_rate(self) -> float:
        return self.kept / self.samples if self.samples else 1.0

    def as_dict(self) -> dict[str, object]:
        return {
            "samples": self.samples,
            "kept": self.kept,
            "dropped": self.samples - self.kept,
            "kept_rate": round(self.kept_rate, 4),
            "reasons": dict(self.reasons.most_common()),
            "examples": self.examples,
        }


class Ledger:
    """Counts per kind (`reflection`, `interaction`) and the kill check."""

    def __init__(self, every: int, min_kept_rate: float, max_reason_share: float, where: str = ""):
        self.every = every
        self.min_kept_rate = min_kept_rate
        self.max_reason_share = max_reason_share
        self.where = where
        self.kinds: dict[str, KindCounts] = {}

    def _kind(self, kind: str) -> KindCounts:
        if kind not in self.kinds:
            self.kinds[kind] = KindCounts(window=deque(maxlen=self.every), next_check=self.every)
        return self.kinds[kind]

    def record(self, kind: str, reason: str | None, text: str) -> None:
        """One filtered sample: `reason` is None when it was kept."""
        k = self._kind(kind)
        k.samples += 1
        k.window.append((reason, text))
        if reason is None:
            k.kept += 1
            return
        k.reasons[reason] += 1
        ex = k.examples.setdefault(reason, [])
        if len(ex) < EXAMPLES_PER_REASON:
            ex.append(clip(text))

    def rearm(self) -> None:
        """After replaying a resumed run's history: the next check comes `every` samples from now."""
        for k in self.kinds.values():
            k.next_check = (k.samples // self.every + 1) * self.every

    def check(self, kind: str) -> None:
        """Run the kill criteria if `kind` crossed a multiple of `every` since the last check."""
        k = self.kinds.get(kind)
        if k is None or k.samples < k.next_check:
            return
        while k.next_check <= k.samples:
            k.next_check += self.every
        problem = self.verdict(kind)
        if problem:
            raise GateError(problem)
        log.info("%s kill check passed: %s", kind, self.line(kind))

    def verdict(self, kind: str) -> str | None:
        """The kill message for the last window of `kind`, or None when it passes."""
        k = self.kinds[kind]
        window = list(k.window)
        n = len(window)
        if n == 0:
            return None
        reasons = Counter(r for r, _ in window if r is not None)
        kept = n - sum(reasons.values())
        failures = []
        if kept / n < self.min_kept_rate:
            failures.append(
                f"kept {kept}/{n} ({kept / n:.0%}) < introspect.min_kept_rate {self.min_kept_rate:.0%}"
            )
        top, top_n = reasons.most_common(1)[0] if reasons else ("", 0)
        if top_n / n > self.max_reason_share:
            failures.append(
                f"'{top}' dropped {top_n}/{n} ({top_n / n:.0%}) > introspect.max_reason_share "
                f"{self.max_reason_share:.0%}"
            )
        if not failures:
            return None
        parts = []
        for reason, count in reasons.most_common(3):
            examples = [t for r, t in window if r == reason][:EXAMPLES_PER_REASON]
            shown = " | ".join(repr(clip(t, 100)) for t in examples)
            parts.append(f"{reason} {count} (e.g. {shown})")
        where = f" Everything generated so far is kept in {self.where}." if self.where else ""
        return (
            f"introspect kill criterion on the last {n} {kind} samples: {'; '.join(failures)}. "
            f"Top reasons: {'; '.join(parts)}.{where} Fix the cause (a better DPO model, "
            "introspect.repetition_penalty, token limits), then rerun with --resume; or relax the "
            "thresholds if these drops are expected."
        )

    def line(self, kind: str) -> str:
        k = self.kinds.get(kind)
        if k is None:
            return "no samples"
        drops = ", ".join(f"{r} {c}" for r, c in k.reasons.most_common()) or "none"
        return f"{k.samples} samples, {k.kept} kept ({k.kept_rate:.0%}); drops: {drops}"

    def stats(self) -> dict[str, object]:
        return {kind: k.as_dict() for kind, k in sorted(self.kinds.items())}

    def dropped(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for kind, k in self.kinds.items():
            for reason, c in k.reasons.items():
                out[f"{kind}:{reason}"] += c
        return dict(out)
