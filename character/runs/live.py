"""Live progress of a running stage and the one-run summary the runs list shows.

Part of `character.runs` (import from there). Progress is read from the files a stage appends to as it
goes, so it works for runs started by the pipeline or by a single stage command, and after a crash.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from character.layout import STAGES
from character.runs.files import (
    SUBRUNS,
    config_value,
    count_lines,
    manifest,
    number,
    one_line,
    read_json,
    read_metrics,
    resolved_config,
    run_status,
    stages_done,
    state,
    subrun_dirs,
)
from character.runs.stages import totals

# ---- live progress --------------------------------------------------------------------------------


@dataclass
class Progress:
    """How far a running stage is: `done` of `total` `unit`, with rate and ETA when they are known."""

    sub: str
    stage: str
    done: int
    total: int | None
    unit: str
    elapsed_s: float
    rate: float | None = None  # units per second
    eta_s: float | None = None

    @property
    def fraction(self) -> float | None:
        return min(1.0, self.done / self.total) if self.total else None


def stage_progress(sub_dir: Path, stage: str, started_at: float | None, now: float | None = None) -> Progress:
    """Progress of a stage that has not finished, read from the files it appends to as it goes:
    distill from `pairs.jsonl` (kept pairs, target `distill.pairs`), introspect from its two raw stores
    (samples attempted, target reflections + interactions), dpo/sft from the last `step` in
    `metrics.jsonl` (target `max_steps`, else epochs x steps per epoch). Merge and eval write at the end."""
    sub_dir = Path(sub_dir)
    now = time.time() if now is None else now
    elapsed = max(0.0, now - started_at) if isinstance(started_at, int | float) else 0.0
    cfg = resolved_config(sub_dir)
    sd = sub_dir / stage
    done, total, unit = 0, None, ""  # merge and eval: no count until they finish
    if stage == "distill":
        done, unit = count_lines(sd / "pairs.jsonl"), "pairs kept"
        total = _int(config_value(cfg, "distill.pairs"))
    elif stage == "introspect":
        done = count_lines(sd / "reflections.jsonl") + count_lines(sd / "interactions.jsonl")
        unit = "samples"
        r, i = (
            _int(config_value(cfg, "introspect.reflections")),
            _int(config_value(cfg, "introspect.interactions")),
        )
        total = (r or 0) + (i or 0) or None
    elif stage in ("dpo", "sft"):
        rows = read_metrics(sd / "metrics.jsonl")
        steps = [int(r["step"]) for r in rows if number(r.get("step")) is not None]
        done, unit = (max(steps) if steps else 0), "steps"
        total = _int(config_value(cfg, f"{stage}.max_steps"))
        if not total or total <= 0:
            epochs = number(config_value(cfg, f"{stage}.epochs"))
            last_epoch = next(
                (number(r.get("epoch")) for r in reversed(rows) if number(r.get("epoch"))),
                None,
            )
            total = round(done / last_epoch * epochs) if done and last_epoch and epochs else None
    p = Progress(
        sub_dir.name if sub_dir.name in SUBRUNS else "main",
        stage,
        done,
        total,
        unit,
        elapsed,
    )
    if done and elapsed > 0:
        p.rate = done / elapsed
        if total and total > done:
            p.eta_s = (total - done) / p.rate
    return p


def _int(v: Any) -> int | None:
    n = number(v)
    return int(n) if n is not None else None


# ---- one run, summarised --------------------------------------------------------------------------


@dataclass
class RunSummary:
    """What the runs list shows for one run."""

    name: str
    path: Path
    persona: str
    scale: str
    status: str
    error: str | None
    started_at: float | None
    finished_at: float | None
    subruns: list[str] = field(default_factory=list)
    stages_done: int = 0
    current: Progress | None = None  # the running (or interrupted) stage, if any
    tokens: int = 0
    cost_usd: float = 0.0


def _scale(sources: Any) -> str:
    """The presets a run was resolved with (e.g. `smoke`, `paper`), from sources.json."""
    if not isinstance(sources, dict):
        return "?"
    presets = sorted({str(s).split(":", 1)[1] for s in sources.values() if str(s).startswith("preset:")})
    return ", ".join(presets) or "default"


def current_stage(run_dir: Path) -> tuple[Path, str, float | None] | None:
    """(sub-run dir, stage, started_at) of the stage a run is in (or was in when it stopped)."""
    for _label, sub in reversed(subrun_dirs(run_dir)):
        entries = state(sub).get("stages", {})
        if not isinstance(entries, dict):
            continue
        for stage in STAGES:
            e = entries.get(stage)
            if isinstance(e, dict) and e.get("status") in ("running", "failed") and not manifest(sub / stage):
                return sub, stage, e.get("started_at")
    return None


def summary(run_dir: Path, now: float | None = None) -> RunSummary:
    run_dir = Path(run_dir)
    st = state(run_dir)
    status = run_status(run_dir)
    cfg = resolved_config(run_dir)
    tokens, usd = totals(run_dir)
    s = RunSummary(
        name=run_dir.name,
        path=run_dir,
        persona=str(st.get("persona") or cfg.get("persona") or run_dir.name.split("_")[0]),
        scale=_scale(read_json(run_dir / "sources.json")),
        status=status,
        error=one_line(st["error"]) if st.get("error") else None,
        started_at=number(st.get("started_at")),
        finished_at=number(st.get("finished_at")),
        subruns=[str(x) for x in st.get("subruns", []) if isinstance(x, str)],
        stages_done=len(stages_done(run_dir)),
        tokens=tokens,
        # cost.json is rewritten after every stage; pipeline.json's total only when the run ends.
        cost_usd=usd if tokens or usd else (number(st.get("cost_usd")) or 0.0),
    )
    cur = current_stage(run_dir)
    if cur is not None and status not in ("done",):
        s.current = stage_progress(cur[0], cur[1], cur[2], now)
    return s
