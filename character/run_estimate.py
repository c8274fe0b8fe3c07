"""How long a pipeline run takes: work per stage from the resolved config, seconds from rates.

In: a resolved `RunConfig` (the presets' sizes). Out: seconds per (sub-run, stage), the one overall
progress line the runner logs at each stage ("stage 3/6 of main, 41 % of the run, ETA ~18 min"), and
the CPU check that stops a run which would take days before it starts.

Work is counted in *budget tokens*, the upper bounds the config sets: generation stages count replies
x their max_new_tokens (distill: pairs x (teacher + student); introspect: reflections + interactions x
turns x 2 copies; eval: held-out and probe replies of the base and the trained model, plus the
robustness replies of three models), training stages count steps x batch x max_length (DPO: chosen and
rejected). `CPU_RATES` are budget tokens per second of each stage on the embedded model on the
project's 2-core CPU machine, from the quiet demo run of technical report 001 (distill 119 s for 50
attempts of 2 x 128 tokens, dpo 518 s for 24 steps of 8 x 2 x 256, introspect 83 s, sft 56 s, eval
92 s). A running pipeline replaces them with the rates its own finished stages achieved, so the ETA
is right on a GPU after the first smoke stage.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field

from character.config import RunConfig
from character.errors import UsageError
from character.layout import STAGES

CPU_RATES = {"distill": 100.0, "dpo": 190.0, "introspect": 65.0, "sft": 880.0, "merge": 1 / 3, "eval": 260.0}
PROBE_SET_SIZE = 245  # eval.probe_items = 0 means the whole shipped set


def _steps(rows: float, epochs: float, batch: int, max_steps: int) -> int:
    return max_steps if max_steps > 0 else max(1, math.ceil(rows * epochs / batch))


def stage_work(cfg: RunConfig, stage: str) -> float:
    """Budget tokens of one stage (merge: one unit)."""
    if stage == "distill":
        return cfg.distill.pairs * 2 * cfg.sampling.max_new_tokens
    if stage == "dpo":
        p = cfg.dpo
        return (
            _steps(cfg.distill.pairs, p.epochs, p.batch_size, p.max_steps) * p.batch_size * 2 * p.max_length
        )
    if stage == "introspect":
        i = cfg.introspect
        return i.reflections * i.reflection_max_new_tokens + i.interactions * i.turns * 2 * (
            i.interaction_max_new_tokens
        )
    if stage == "sft":
        s, i = cfg.sft, cfg.introspect
        return (
            _steps(i.reflections + i.interactions, s.epochs, s.batch_size, s.max_steps)
            * s.batch_size
            * (s.max_length)
        )
    if stage == "eval":
        e, r = cfg.eval, cfg.robustness
        probes = e.probe_items or PROBE_SET_SIZE
        robust = r.classifier_prompts + r.prompts * (1 + r.suffix_count) + r.prefill_prompts
        return 2 * (e.heldout_prompts * e.max_new_tokens + probes * e.probe_max_new_tokens) + (
            3 * robust * r.max_new_tokens
        )
    return 1.0  # merge


def run_plan(cfg: RunConfig, until: str | None = None) -> list[tuple[str, RunConfig, list[str]]]:
    """(label, config, stages) of each sub-run the runner will make: smoke runs first, then main."""
    from character.runner import SMOKE_LABELS, smoke_config

    last = STAGES.index(until) + 1 if until else len(STAGES)
    plan = [(label, smoke_config(cfg, label)) for label in SMOKE_LABELS.get(cfg.pipeline.smoke, [])]
    if not cfg.pipeline.smoke_only:
        plan.append(("main", cfg))
    return [(label, c, list(STAGES[:last])) for label, c in plan]


def estimate_seconds(cfg: RunConfig, until: str | None = None) -> float:
    """The whole run (smoke runs included) at `CPU_RATES`."""
    return sum(stage_work(c, s) / CPU_RATES[s] for _, c, stages in run_plan(cfg, until) for s in stages)


def duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 90:
        return f"{s} s"
    if s < 90 * 60:
        return f"{round(s / 60)} min"
    if s < 48 * 3600:
        return f"{s // 3600} h {round(s % 3600 / 60):02d} min"
    return f"{s / 86400:.1f} days"


def _cpu_only(cfg: RunConfig) -> bool:
    if cfg.backend.device == "cuda":
        return False
    if cfg.backend.device == "cpu":
        return True
    import torch

    return not torch.cuda.is_available()


def check_cpu_feasible(cfg: RunConfig, command: str, until: str | None = None) -> None:
    """Stop, in one line, a run that would take longer than `pipeline.max_cpu_hours` on this CPU-only
    machine (e.g. `--paper-scale` on the embedded model: days), naming the two ways forward."""
    limit = cfg.pipeline.max_cpu_hours
    if limit <= 0 or not _cpu_only(cfg):
        return
    seconds = estimate_seconds(cfg, until)
    if seconds <= limit * 3600:
        return
    d, i = cfg.distill, cfg.introspect
    named = "" if cfg.models.student == cfg.models.teacher == "embedded" else ", with the models named"
    raise UsageError(
        f"this run would take about {duration(seconds)} on this CPU-only machine (the embedded model's "
        f"measured CPU speed{named}: {d.pairs:,} pairs, {i.reflections:,} reflections, "
        f"{i.interactions:,} conversations of {i.turns} turns), over pipeline.max_cpu_hours={limit:g}: "
        f"run `{command} --scale demo` to see the method work here in ~10 min, or on a GPU machine name "
        "real models (--teacher MODEL --student MODEL --backend vllm); --set pipeline.max_cpu_hours=0 "
        "runs it anyway"
    )


@dataclass
class OverallProgress:
    """Where a pipeline run is as a whole: the runner calls `begin` before a stage, `done` after it
    (or `skipped` for one a resumed run already has) and logs the line `begin` returns."""

    plan: list[tuple[str, RunConfig, list[str]]]
    started: float = field(default_factory=time.time)
    seconds: dict[tuple[str, str], float] = field(default_factory=dict)  # finished: measured seconds
    skipped_: set[tuple[str, str]] = field(default_factory=set)

    def _order(self) -> list[tuple[str, str, RunConfig]]:
        return [(label, s, c) for label, c, stages in self.plan for s in stages]

    def _speed(self, stage: str) -> float:
        """Measured rate over CPU_RATES: this stage's own if it has run, else the median of the others."""
        ratios: dict[str, list[float]] = {}
        for (label, s), secs in self.seconds.items():
            cfg = next(c for lb, c, _ in self.plan if lb == label)
            if secs > 0:
                ratios.setdefault(s, []).append(stage_work(cfg, s) / secs / CPU_RATES[s])
        if stage in ratios:
            return ratios[stage][-1]
        flat = [r for rs in ratios.values() for r in rs]
        return statistics.median(flat) if flat else 1.0

    def estimate(self, label: str, stage: str, cfg: RunConfig) -> float:
        return stage_work(cfg, stage) / (CPU_RATES[stage] * self._speed(stage))

    def begin(self, label: str, stage: str) -> str:
        order = self._order()
        pos = next((n for n, (lb, s, _) in enumerate(order) if (lb, s) == (label, stage)), None)
        if pos is None:  # a stage outside the plan (a caller that runs sub-runs itself): no line
            return ""
        done = sum(
            self.seconds.get((lb, s), self.estimate(lb, s, c) if (lb, s) in self.skipped_ else 0.0)
            for lb, s, c in order[:pos]
        )
        left = sum(self.estimate(lb, s, c) for lb, s, c in order[pos:])
        share = done / (done + left) if done + left > 0 else 0.0
        stages = next(st for lb, _, st in self.plan if lb == label)
        subs = f"{[lb for lb, _, _ in self.plan].index(label) + 1}/{len(self.plan)} {label}"
        basis = "measured rates" if self.seconds else "the embedded model's CPU rates"
        return (
            f"run progress: stage {stages.index(stage) + 1}/{len(stages)} {stage} of sub-run {subs} "
            f"(step {pos + 1}/{len(order)}), {share:.0%} of the run done, "
            f"{duration(time.time() - self.started)} elapsed, ETA ~{duration(left)} ({basis})"
        )

    def done(self, label: str, stage: str, seconds: float) -> None:
        self.seconds[(label, stage)] = seconds

    def skipped(self, label: str, stage: str) -> None:
        self.skipped_.add((label, stage))
