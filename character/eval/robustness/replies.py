"""Every reply the robustness evaluation needs, generated once and kept.

A `Source` is one model in the evaluation (a checkpoint under test, the base model, a contrast
model); its backend opens only when a reply of it is missing, so a finished evaluation re-scores from
its replies file without loading a model. `Replies` appends each chunk of generated replies to a
JSONL file (`records.JsonlStore`: fsync per chunk, torn last line repaired) keyed by source, model,
kind, variant, prompt, turn and a fingerprint of the sampling settings: a killed evaluation resumes
where it stopped, and a changed setting never reuses a stale reply.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from character.backends.base import SamplingParams
from character.backends.think import strip_think
from character.cost import CostTracker
from character.eval.target import Generator, Target
from character.records import JsonlStore, Message

log = logging.getLogger(__name__)

KEY = ("source", "model", "kind", "variant", "prompt_id", "turn", "settings")
CHUNK = 64  # replies generated and appended together: a kill loses at most one chunk


@dataclass
class Source:
    key: str  # "full", "dpo_only", "base", "contrast1", ...
    label: str  # the classifier's class: the persona's name, "base", a contrast model's name
    target: Target
    tested: bool = False
    _gen: Generator | None = field(default=None, repr=False)

    def open(self, cfg: Any) -> Generator:
        if self._gen is None:
            self._gen = Generator(cfg, self.target)
        return self._gen

    def close(self) -> None:
        if self._gen is not None:
            self._gen.close()
            self._gen = None


@dataclass
class Item:
    kind: str  # "single", "prompted", "prefill", "drift"
    variant: str
    prompt_id: str
    turn: int
    messages: list[Message]


def settings_fingerprint(params: SamplingParams, extra: dict[str, Any]) -> str:
    blob = json.dumps({"params": params.__dict__, **extra}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


class Replies:
    def __init__(
        self,
        cfg: Any,
        params: SamplingParams,
        settings: str,
        *,
        path: Path | None = None,
        tracker: CostTracker | None = None,
        progress: bool = True,
    ):
        self.cfg, self.params, self.settings = cfg, params, settings
        self.tracker, self.progress = tracker, progress
        self.store = JsonlStore(path, KEY) if path is not None else None
        self.rows: dict[tuple[Any, ...], dict[str, Any]] = {}
        if self.store is not None:
            self.rows = {self.store.key(r): r for r in self.store}
            if self.rows:
                log.info("robustness: resuming with %d replies from %s", len(self.rows), path)
        self.generated = 0

    def _key(self, src: Source, kind: str, variant: str, prompt_id: str, turn: int) -> tuple[Any, ...]:
        return (src.key, src.target.label, kind, variant, prompt_id, turn, self.settings)

    def get(self, src: Source, kind: str, variant: str, prompt_id: str, turn: int = 1) -> str:
        return str(self.rows[self._key(src, kind, variant, prompt_id, turn)]["text"])

    def fill(self, src: Source, items: list[Item], what: str) -> None:
        """Generate the replies of `items` that are not there yet."""
        missing = [
            it for it in items if self._key(src, it.kind, it.variant, it.prompt_id, it.turn) not in self.rows
        ]
        if not missing:
            return
        log.info("robustness: %s (%s): %d %s replies", src.key, src.target.label, len(missing), what)
        gen = src.open(self.cfg)
        for start in range(0, len(missing), CHUNK):
            chunk = missing[start : start + CHUNK]
            outs = gen.generate([it.messages for it in chunk], self.params, progress=self.progress)
            comps = [o[0] for o in outs]
            rows = []
            for it, comp in zip(chunk, comps, strict=True):
                row = dict(zip(KEY, self._key(src, it.kind, it.variant, it.prompt_id, it.turn), strict=True))
                row.update(
                    label=src.label,
                    user=it.messages[-1]["content"],
                    text=strip_think(comp.text),
                    finish_reason=comp.finish_reason,
                )
                rows.append(row)
            if self.store is not None:
                self.store.append(rows)
            self.rows.update({tuple(r[k] for k in KEY): r for r in rows})
            self.generated += len(rows)
            if self.tracker is not None:
                # After the append: a budget stop keeps what was generated.
                self.tracker.record(
                    "eval",
                    src.target.label,
                    sum(c.prompt_tokens for c in comps),
                    sum(c.completion_tokens for c in comps),
                )
