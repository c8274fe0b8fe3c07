"""The running filter ledger and the kill criteria, for every generating stage (introspect, distill).

Every generated reply that goes through the filters is one *sample*: a reflection, one turn of a
self-interaction (a regenerated turn counts again), or one teacher/student pair. The ledger counts
samples, kept samples, drops by reason and repairs by reason for each kind, keeps three examples per
reason, and every `every` samples of a kind checks the last `every` of them: a kept rate below
`min_kept_rate`, or one reason above `max_reason_share`, stops the stage with a `GateError` naming the
top reasons with three examples each. The seed runs went on for hours producing 54.6 % corrupt data;
the window (not the running total) makes the check react to a model that degrades mid-run, and lets a
resumed run that fixed its sampling recover.

A repaired sample is kept, but a fake turn is still the model failing to stop at its turn: a reply
ended by a fake-turn marker (`Completion.stopped_by`) or cut by the filters counts towards the
`hallucinated_turn` share (`KILL_REPAIRS`), never against the kept rate.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from dataclasses import dataclass, field

from character.errors import GateError

log = logging.getLogger(__name__)

EXAMPLES_PER_REASON = 3
EXAMPLE_CHARS = 160
# Repairs that count towards a reason's share in the kill window (a trimmed cut-off or a stripped
# "Assistant:" label is ordinary; a model writing its partner's turns is the seed failure).
KILL_REPAIRS = frozenset({"hallucinated_turn"})


def clip(text: str, n: int = EXAMPLE_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[: n - 1] + "…"


@dataclass
class KindCounts:
    samples: int = 0
    kept: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    repaired: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    window: deque[tuple[str | None, str, str | None]] = field(default_factory=deque)
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
            "repaired": dict(self.repaired.most_common()),
            "examples": self.examples,
        }


class Ledger:
    """Counts per kind (`reflection`, `interaction`, `pair`) and the kill check.

    `stage` names the stage and the config keys in messages (`{stage}.min_kept_rate`, or for distill
    `distill.kill_min_kept_rate`); `advice` is the fix the message suggests."""

    def __init__(
        self,
        every: int,
        min_kept_rate: float,
        max_reason_share: float,
        where: str = "",
        *,
        stage: str = "introspect",
        keys: tuple[str, str] = ("introspect.min_kept_rate", "introspect.max_reason_share"),
        advice: str = "a better DPO model, introspect.repetition_penalty, token limits",
    ):
        self.every = every
        self.min_kept_rate = min_kept_rate
        self.max_reason_share = max_reason_share
        self.where = where
        self.stage, self.keys, self.advice = stage, keys, advice
        self.kinds: dict[str, KindCounts] = {}

    def _kind(self, kind: str) -> KindCounts:
        if kind not in self.kinds:
            self.kinds[kind] = KindCounts(window=deque(maxlen=self.every), next_check=self.every)
        return self.kinds[kind]

    def record(self, kind: str, reason: str | None, text: str, repair: str | None = None) -> None:
        """One filtered sample: `reason` is None when it was kept; `repair` the reason id of a defect
        that was repaired (`Verdict.repair`)."""
        k = self._kind(kind)
        k.samples += 1
        k.window.append((reason, text, repair if repair in KILL_REPAIRS else None))
        if repair:
            k.repaired[repair] += 1
        if reason is None:
            k.kept += 1
            if repair in KILL_REPAIRS:
                ex = k.examples.setdefault(f"{repair} (repaired)", [])
                if len(ex) < EXAMPLES_PER_REASON:
                    ex.append(clip(text))
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
        kept = sum(r is None for r, _, _ in window)
        # A sample's reason in the window: why it was dropped, or the fake turn it was repaired of.
        labels = [r or f for r, _, f in window]
        reasons = Counter(x for x in labels if x is not None)
        failures = []
        if kept / n < self.min_kept_rate:
            failures.append(f"kept {kept}/{n} ({kept / n:.0%}) < {self.keys[0]} {self.min_kept_rate:.0%}")
        top, top_n = reasons.most_common(1)[0] if reasons else ("", 0)
        if top_n / n > self.max_reason_share:
            failures.append(
                f"'{top}' in {top_n}/{n} ({top_n / n:.0%}, repaired ones included) > {self.keys[1]} "
                f"{self.max_reason_share:.0%}"
            )
        if not failures:
            return None
        parts = []
        for reason, count in reasons.most_common(3):
            examples = [t for x, (_, t, _) in zip(labels, window, strict=True) if x == reason]
            shown = " | ".join(repr(clip(t, 100)) for t in examples[:EXAMPLES_PER_REASON])
            parts.append(f"{reason} {count} (e.g. {shown})")
        where = f" Everything generated so far is kept in {self.where}." if self.where else ""
        return (
            f"{self.stage} kill criterion on the last {n} {kind} samples: {'; '.join(failures)}. "
            f"Top reasons: {'; '.join(parts)}.{where} Fix the cause ({self.advice}), then rerun with "
            "--resume; or relax the thresholds if these drops are expected."
        )

    def line(self, kind: str) -> str:
        k = self.kinds.get(kind)
        if k is None:
            return "no samples"
        drops = ", ".join(f"{r} {c}" for r, c in k.reasons.most_common()) or "none"
        fixed = ", ".join(f"{r} {c}" for r, c in k.repaired.most_common())
        return f"{k.samples} samples, {k.kept} kept ({k.kept_rate:.0%}); drops: {drops}" + (
            f"; repaired: {fixed}" if fixed else ""
        )

    def stats(self) -> dict[str, object]:
        return {kind: k.as_dict() for kind, k in sorted(self.kinds.items())}

    def repaired(self) -> dict[str, int]:
        """Repairs by `kind:reason` (kept samples whose defect was cut or trimmed away)."""
        return {f"{kind}:{r}": c for kind, k in self.kinds.items() for r, c in k.repaired.items()}

    def dropped(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for kind, k in self.kinds.items():
            for reason, c in k.reasons.items():
                out[f"{kind}:{reason}"] += c
        return dict(out)
