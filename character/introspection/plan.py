"""Which slots are done and which come next, rebuilt from the rows on disk (resume and top-up).

A slot is one sample the stage owes: `(prompt_index, sample_index)` for a reflection,
`(variant, conv_index)` for a conversation. Every generation attempt of a slot is one stored row with
an attempt number; the slot is done once one attempt was kept. A resumed run rebuilds this plan from
the store and continues exactly where it stopped (no duplicate, no gap); top-up is simply "the next
attempt of every slot that is not done", fewest attempts first, until `limit` attempts were spent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Row = dict[str, Any]
Slot = Any  # a hashable tuple: (prompt_index, sample_index) or (variant, conv_index)


@dataclass
class SlotPlan:
    targets: list[Slot]
    slot_of: Callable[[Row], Slot]
    limit: int = 0
    kept: dict[Slot, Row] = field(default_factory=dict)
    attempts: dict[Slot, int] = field(default_factory=dict)
    total_attempts: int = 0

    @classmethod
    def build(
        cls,
        targets: Sequence[Slot],
        slot_of: Callable[[Row], Slot],
        rows: Sequence[Row],
        factor: float,
    ) -> SlotPlan:
        plan = cls(list(targets), slot_of, limit=math.ceil(len(targets) * factor))
        for r in rows:
            plan.add(r)
        return plan

    def add(self, row: Row) -> bool:
        """Account one stored attempt; True when it completed a slot."""
        slot = self.slot_of(row)
        self.total_attempts += 1
        self.attempts[slot] = max(self.attempts.get(slot, 0), int(row["attempt"]) + 1)
        if row["kept"] and slot not in self.kept:
            self.kept[slot] = row
            return True
        return False

    def next_attempt(self, slot: Slot) -> int:
        return self.attempts.get(slot, 0)

    def pending(self) -> list[Slot]:
        """Target slots without a kept row: fewest attempts first, then in target order."""
        order = {s: i for i, s in enumerate(self.targets)}
        todo = [s for s in self.targets if s not in self.kept]
        return sorted(todo, key=lambda s: (self.attempts.get(s, 0), order[s]))

    def next_chunk(self, size: int) -> list[Slot]:
        """Up to `size` pending slots, never past the attempt limit."""
        room = self.limit - self.total_attempts
        return self.pending()[: max(0, min(size, room))]

    @property
    def done(self) -> int:
        return sum(1 for s in self.targets if s in self.kept)

    def kept_rows(self) -> list[Row]:
        return [self.kept[s] for s in self.targets if s in self.kept]
