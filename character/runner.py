"""The pipeline runner: distill -> dpo -> introspect -> sft -> merge -> eval, resumable, with smoke runs.

In: a resolved config (`config_layers.Resolved`). Out: a run directory

    artifacts/runs/{persona}[_{suffix}]_{timestamp}/
      resolved_config.toml  config_hash.txt  sources.json  pipeline.json  cost.json
      smoke-small/  smoke-large/     each a complete run directory of its own (same layout)
      distill/ dpo/ introspect/ sft/ merge/ eval/      the full run (character/layout.py)
      report.md  report.html  report/*.png

Smoke runs come first (unless `pipeline.smoke = "none"`): the full config with only the sizes, step
counts and gates of the smoke-small / smoke-large presets laid over it, so they go through the same code
path and hyperparameters as the real run (the prior orchestrator's smoke runs tested a different mode).
Any stage error in a smoke run (non-finite loss, dead DPO signal, failed gate or verification) stops
everything before the full run spends anything.

Resume: a stage whose manifest exists is skipped when the config keys it depends on are unchanged; a
finished stage whose keys changed is refused, naming them, unless `--force STAGE` (which moves that
stage and every later one aside to `superseded/` and reruns them). A stage with no manifest is simply
run again in place: generation stages continue from their append-only JSONL stores.

Run it with `character pipeline PERSONA` (see `--help`); tests inject fake stages through `stages=`.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import shutil
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from character import budget_ledger, disk_space, paths
from character.atomic import atomic_write_json, atomic_write_text
from character.backends import lifecycle
from character.config import RunConfig
from character.config_layers import (
    Resolved,
    config_hash,
    flatten,
    get_value,
    leaf_keys,
    read_preset,
    to_toml,
)
from character.cost import CostTracker
from character.errors import (
    BudgetExceeded,
    CharacterError,
    ConfigError,
    TrainingAborted,
    UsageError,
)
from character.layout import STAGES
from character.manifest import Manifest, read_manifest
from character.run_estimate import OverallProgress
from character.runs import STATE, read_cost, read_state

log = logging.getLogger(__name__)

StageFn = Callable[..., Manifest]
SMOKE_LABELS = {"small": ["smoke-small"], "large": ["smoke-large"], "both": ["smoke-small", "smoke-large"]}

# The config keys each stage's output depends on (a prefix ends with "."). Later stages depend on
# everything earlier ones do. Backend, budget, suffix and pipeline settings change how a stage runs,
# not what it produces, so changing them never invalidates finished work.
_OWN_KEYS: dict[str, tuple[str, ...]] = {
    "distill": (
        "persona",
        "seed",
        "models.teacher",
        "models.student",
        "models.teacher_name",
        "models.student_name",
        "sampling.",
        "distill.",
        "filters.",
    ),
    "dpo": ("lora.", "dpo."),
    "introspect": ("introspect.",),
    "sft": ("sft.",),
    "merge": ("merge.",),
    "eval": ("eval.", "models.judge", "robustness."),
}

# What a smoke preset may change: sizes, step counts, held-out shares and gate thresholds. Anything
# else (learning rates, beta, LoRA, sampling, models) would make the smoke run test a different mode.
SMOKE_ALLOWED = {
    "distill.pairs",
    "distill.max_attempts_factor",
    "distill.min_chosen_marker_rate",
    "distill.min_marker_gap",
    "distill.max_chosen_refusal_rate",
    "distill.min_kept_rate",
    "distill.kill_min_kept_rate",
    "distill.kill_max_reason_share",
    "dpo.max_steps",
    "dpo.eval_fraction",
    "dpo.health.warmup_logs",
    "introspect.reflections",
    "introspect.interactions",
    "introspect.turns",
    "introspect.kill_check_every",
    "introspect.min_kept_rate",
    "introspect.max_reason_share",
    "introspect.max_attempts_factor",
    "sft.max_steps",
    "sft.eval_fraction",
    "sft.health.warmup_logs",
    "eval.heldout_prompts",
    "eval.probe_items",
    "robustness.classifier_prompts",
    "robustness.prompts",
    "robustness.prefill_prompts",
    "robustness.drift_conversations",
    "robustness.coherence_pairs",
    "robustness.bootstrap",
}


class SmokeFailed(CharacterError):
    """A smoke run failed: the full run was not started."""


def stage_keys(stage: str) -> list[str]:
    """Dotted config keys the output of `stage` depends on (its own and every earlier stage's)."""
    prefixes = [p for s in STAGES[: STAGES.index(stage) + 1] for p in _OWN_KEYS[s]]
    return [k for k in leaf_keys() if any(k == p or (p.endswith(".") and k.startswith(p)) for p in prefixes)]


def flat_values(cfg: RunConfig, keys: list[str] | None = None) -> dict[str, Any]:
    flat = flatten(cfg.model_dump(mode="json"), "the config")
    return {k: flat.get(k, get_value(cfg, k)) for k in (keys or leaf_keys())}


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in new if k in old and old[k] != new[k])


def describe_changes(old: Mapping[str, Any], new: Mapping[str, Any], keys: list[str]) -> str:
    return ", ".join(f"{k} ({old[k]!r} -> {new[k]!r})" for k in keys)


# ---- stage table ----------------------------------------------------------------------------------


def default_stages() -> dict[str, StageFn]:
    """The real stage functions that exist in this checkout (`character/stages/<stage>.py`)."""
    table: dict[str, StageFn] = {}
    for name in STAGES:
        full = f"character.stages.{name}"
        try:
            mod = importlib.import_module(full)
        except ModuleNotFoundError as e:
            if e.name != full:
                raise
            continue
        table[name] = mod.run
    return table


# ---- configs of the sub-runs ----------------------------------------------------------------------


def smoke_config(cfg: RunConfig, preset: str) -> RunConfig:
    """The full config with only the smoke preset's sizes, steps and gates laid over it."""
    flat = flatten(read_preset(preset), f"preset '{preset}'")
    bad = sorted(set(flat) - SMOKE_ALLOWED)
    if bad:
        raise ConfigError(
            f"preset '{preset}' sets {', '.join(bad)}, which would make the smoke run differ from the full "
            "run in more than size; a smoke preset may only set: " + ", ".join(sorted(SMOKE_ALLOWED))
        )
    data = cfg.model_dump(mode="json")
    for dotted, value in flat.items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    # Smoke checkpoints get their own registry names so they never replace a real run's.
    data["name_suffix"] = f"{cfg.name_suffix}-{preset}" if cfg.name_suffix else preset
    data["pipeline"]["smoke"] = "none"
    data["pipeline"]["smoke_only"] = False
    data["pipeline"]["report"] = False
    return RunConfig.model_validate(data)


@dataclass
class SubRun:
    label: str  # "smoke-small", "smoke-large" or "main"
    run_dir: Path
    cfg: RunConfig


@dataclass
class PipelineResult:
    run_dir: Path
    subruns: list[SubRun] = field(default_factory=list)
    cost_usd: float = 0.0


def new_run_dir(cfg: RunConfig) -> Path:
    # A persona given as a constitution file (`pipeline path/to/pirate.yaml`) names its run by the file's
    # stem: the path itself would put the run directory next to the file, outside artifacts/runs.
    persona = Path(cfg.persona).stem if cfg.persona.endswith((".yaml", ".yml")) else cfg.persona
    name = persona + (f"_{cfg.name_suffix}" if cfg.name_suffix else "")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = paths.runs_dir() / f"{name}_{stamp}"
    d, n = base, 2
    while d.exists():
        d, n = base.with_name(f"{base.name}-{n}"), n + 1
    d.mkdir(parents=True)
    return d


def write_state(run_dir: Path, state: dict[str, Any]) -> None:
    atomic_write_json(Path(run_dir) / STATE, state)


def saved_config(run_dir: Path) -> dict[str, Any] | None:
    """Flat values of the config a run directory was last run with (None if it has none)."""
    p = Path(run_dir) / "resolved_config.toml"
    if not p.exists():
        return None
    cfg = RunConfig.model_validate(tomllib.loads(p.read_text()))
    return flat_values(cfg)


def write_config(run_dir: Path, cfg: RunConfig, sources: Mapping[str, str] | None = None) -> None:
    atomic_write_text(run_dir / "resolved_config.toml", to_toml(cfg))
    atomic_write_text(run_dir / "config_hash.txt", config_hash(cfg) + "\n")
    if sources is not None:
        atomic_write_json(run_dir / "sources.json", dict(sources))


# ---- the runner -----------------------------------------------------------------------------------


class Runner:
    def __init__(
        self,
        resolved: Resolved,
        *,
        run_dir: Path | None = None,
        start: str | None = None,
        until: str | None = None,
        force: str | None = None,
        stages: Mapping[str, StageFn] | None = None,
        progress: bool = True,
    ):
        for flag, s in (("--from", start), ("--until", until), ("--force", force)):
            if s is not None and s not in STAGES:
                raise UsageError(f"{flag} {s!r} is not a stage; stages are {', '.join(STAGES)}")
        if start and until and STAGES.index(start) > STAGES.index(until):
            raise UsageError(f"--from {start} comes after --until {until}; swap them")
        if start not in (None, STAGES[0]) and run_dir is None:
            raise UsageError(f"--from {start} needs --resume RUN_DIR: the earlier stages' output must exist")
        self.resolved = resolved
        self.cfg = resolved.config
        self.resume_dir = Path(run_dir) if run_dir else None
        self.start, self.until, self.force = start, until, force
        self.table = dict(stages) if stages is not None else default_stages()
        self.progress = progress
        self.spent_usd = 0.0
        self.overall = OverallProgress([])

    # -- planning ---------------------------------------------------------------------------------
    def plan(self, run_dir: Path) -> list[SubRun]:
        subs = [
            SubRun(label, run_dir / label, smoke_config(self.cfg, label))
            for label in SMOKE_LABELS.get(self.cfg.pipeline.smoke, [])
        ]
        if not self.cfg.pipeline.smoke_only:
            subs.append(SubRun("main", run_dir, self.cfg))
        if not subs:
            raise UsageError("pipeline.smoke_only is set but --smoke is none: nothing to run")
        return subs

    def stage_range(self, sub: SubRun) -> list[str]:
        # Smoke runs always start at distill (they prove the whole path); --until applies to all.
        first = 0 if sub.label != "main" or not self.start else STAGES.index(self.start)
        last = STAGES.index(self.until) if self.until else len(STAGES) - 1
        return list(STAGES[first : last + 1])

    def check_stages_available(self) -> None:
        last = STAGES.index(self.until) if self.until else len(STAGES) - 1
        missing = [s for s in STAGES[: last + 1] if s not in self.table]
        if missing:
            raise UsageError(
                f"stage(s) {', '.join(missing)} not available: character/stages/<stage>.py is missing in "
                "this checkout; run with --until set to an earlier stage"
            )

    # -- running ----------------------------------------------------------------------------------
    def run(self) -> PipelineResult:
        self.check_stages_available()
        if self.resume_dir is not None:
            run_dir = self.resume_dir
            if not (run_dir / "resolved_config.toml").exists():
                raise UsageError(f"--resume {run_dir}: not a run directory (no resolved_config.toml)")
            self.check_disk(run_dir, run_dir)
        else:
            # Before the run directory exists: a refusal leaves nothing behind.
            runs = paths.runs_dir()
            self.check_disk(runs / "(new run)", runs)
            run_dir = new_run_dir(self.cfg)
        log.info("run directory: %s", run_dir)
        # A killed run's vLLM servers still hold their ports and GPUs: stop them before anything starts.
        prev_pidfile = lifecycle.activate(run_dir / lifecycle.PIDFILE)
        lifecycle.reap(run_dir / lifecycle.PIDFILE)
        subs = self.plan(run_dir)
        state = read_state(run_dir)
        state.update(
            persona=self.cfg.persona,
            status="running",
            pid=os.getpid(),
            started_at=time.time(),
            finished_at=None,
            error=None,
            subruns=[s.label for s in subs],
        )
        write_state(run_dir, state)
        if self.resume_dir is None or not any(s.label == "main" for s in subs):
            write_config(run_dir, self.cfg, self.resolved.sources)
        result = PipelineResult(run_dir, subs)
        # One line per stage on where the whole run is (stage k of 6, share done, ETA): run_estimate.
        self.overall = OverallProgress([(s.label, s.cfg, self.stage_range(s)) for s in subs])
        try:
            for sub in subs:
                if sub.label == "main" and len(subs) > 1:
                    self.check_projection(subs)
                try:
                    self.run_sub(sub, sources=self.resolved.sources if sub.label == "main" else None)
                except CharacterError as e:
                    if sub.label != "main" and not isinstance(e, ConfigError | UsageError):
                        raise SmokeFailed(
                            f"{sub.label} failed: {e} -- the full run was not started; fix the cause and "
                            f"resume with --resume {run_dir}"
                        ) from e
                    raise
            self._finish(run_dir, "done", None)
        except BaseException as e:
            status = "budget" if isinstance(e, BudgetExceeded) else "failed"
            if isinstance(e, KeyboardInterrupt):
                status = "interrupted"
            self._finish(run_dir, status, str(e) or type(e).__name__)
            raise
        finally:
            lifecycle.activate(prev_pidfile)
            result.cost_usd = self.spent_usd
            if self.cfg.pipeline.report:
                self._report(run_dir)
        return result

    def check_disk(self, run_dir: Path, where: Path) -> None:
        """Can the disk under `where` take every weight the stages left to run will write? Checked before
        the first stage, so a run that cannot finish is refused before hours of training."""
        todo = []
        for sub in self.plan(run_dir):
            for stage in self.stage_range(sub):
                forced = self.force is not None and STAGES.index(stage) >= STAGES.index(self.force)
                sd = sub.run_dir / stage
                if forced or not sd.exists() or read_manifest(sd) is None:
                    todo.append((sub.cfg, stage))
        disk_space.require_for_run(self.cfg, where, todo)

    def _finish(self, run_dir: Path, status: str, error: str | None) -> None:
        state = read_state(run_dir)
        state.update(status=status, error=error, finished_at=time.time(), cost_usd=round(self.spent_usd, 6))
        write_state(run_dir, state)

    def _report(self, run_dir: Path) -> None:
        from character.report import write_report

        try:
            write_report(run_dir)
        except Exception as e:  # a broken plot must never hide the run's own outcome
            log.warning("could not write the report for %s: %s", run_dir, e)

    def check_projection(self, subs: list[SubRun]) -> None:
        """Scale the largest smoke run's cost to the full run's sizes; warn when it nears the budget."""
        budget = self.cfg.budget_usd
        smoke = [s for s in subs if s.label != "main"]
        if budget is None or not smoke:
            return
        ref = smoke[-1]
        cost = read_cost(ref.run_dir)
        full, small = self.cfg, ref.cfg
        ratios = {
            "distill": full.distill.pairs / max(1, small.distill.pairs),
            "introspect": (full.introspect.reflections + full.introspect.interactions * full.introspect.turns)
            / max(1, small.introspect.reflections + small.introspect.interactions * small.introspect.turns),
            "eval": full.eval.heldout_prompts / max(1, small.eval.heldout_prompts),
        }
        projected = sum(
            usd * ratios.get(stage, 1.0) for stage, models in cost.items() for usd in _usd(models)
        )
        if projected > self.cfg.pipeline.burn_rate_warn_share * budget:
            log.warning(
                "burn rate: %s cost $%.4f; scaled to the full run that projects to $%.2f, over %.0f%% of "
                "the $%g budget (raise --budget-usd or shrink the run)",
                ref.label,
                sum(u for m in cost.values() for u in _usd(m)),
                projected,
                100 * self.cfg.pipeline.burn_rate_warn_share,
                budget,
            )

    def run_sub(self, sub: SubRun, *, sources: Mapping[str, str] | None = None) -> None:
        d = sub.run_dir
        d.mkdir(parents=True, exist_ok=True)
        prev = saved_config(d)
        state = read_state(d)
        entries: dict[str, Any] = state.setdefault("stages", {})
        write_config(d, sub.cfg, sources)
        now_hash = config_hash(sub.cfg)

        budget = None
        if self.cfg.budget_usd is not None:
            budget = self.cfg.budget_usd - self.spent_usd
            if budget <= 0:
                raise BudgetExceeded(
                    f"budget reached: ${self.spent_usd:.4f} of --budget-usd {self.cfg.budget_usd:g} spent "
                    f"before {sub.label}; raise the budget and rerun with --resume"
                )
        # Parallel ablation scales share one budget through a ledger file (character.budget_ledger).
        tracker = budget_ledger.tracker(
            sub.cfg.backend.prices,
            budget,
            cap_usd=self.cfg.budget_usd,
            key=str(d.parent if sub.label != "main" else d),
            spent_before=self.spent_usd,
        )
        todo = self.stage_range(sub)
        try:
            for stage in STAGES:
                if self.until and STAGES.index(stage) > STAGES.index(self.until):
                    break
                sd = d / stage
                keys_now = flat_values(sub.cfg, stage_keys(stage))
                forced = self.force is not None and STAGES.index(stage) >= STAGES.index(self.force)
                if forced and sd.exists():
                    _supersede(d, stage)
                    entries.pop(stage, None)
                manifest = read_manifest(sd) if sd.exists() else None
                entry = entries.get(stage) or {}
                old_keys = entry.get("keys") or ({k: prev[k] for k in keys_now if k in prev} if prev else {})
                diff = changed_keys(old_keys, keys_now)
                if manifest is not None:
                    if manifest.config_hash != now_hash and diff:
                        raise ConfigError(
                            f"{sub.label}: stage '{stage}' in {d} finished with a different config: "
                            f"{describe_changes(old_keys, keys_now, diff)}; rerun it (and every later stage) "
                            f"with --force {stage}, or resume with the old values"
                        )
                    _seed(tracker, stage, manifest)
                    if entry.get("status") != "done":
                        entries[stage] = {**entry, "status": "done", "keys": keys_now}
                    log.info("%s: %s already finished, skipped", sub.label, stage)
                    self.overall.skipped(sub.label, stage)
                    continue
                if sd.exists() and diff and any(sd.iterdir()):
                    raise ConfigError(
                        f"{sub.label}: stage '{stage}' in {d} has partial output made with a different "
                        f"config: {describe_changes(old_keys, keys_now, diff)}; restart it with --force {stage}"
                    )
                if stage not in todo:
                    raise UsageError(
                        f"--from {self.start}: stage '{stage}' has not finished in {d}; resume from '{stage}' "
                        "or drop --from"
                    )
                self._run_stage(sub, stage, tracker, entries, state, keys_now)
        finally:
            self.spent_usd += tracker.usd_total
            atomic_write_json(d / "cost.json", tracker.as_json())
            write_state(d, state)

    def stage_config(self, cfg: RunConfig) -> RunConfig:
        """The config a stage runs with: resuming a run resumes its training too (dpo/sft continue from
        their last complete checkpoint; the saved config is unchanged)."""
        if self.resume_dir is None or cfg.train.resume:
            return cfg
        return cfg.model_copy(update={"train": cfg.train.model_copy(update={"resume": True})})

    def _run_stage(
        self,
        sub: SubRun,
        stage: str,
        tracker: CostTracker,
        entries: dict[str, Any],
        state: dict[str, Any],
        keys_now: dict[str, Any],
    ) -> None:
        d = sub.run_dir
        fn = self.table[stage]
        entries[stage] = {"status": "running", "keys": keys_now, "started_at": time.time()}
        write_state(d, state)
        log.info("%s: %s ...", sub.label, stage)
        if line := self.overall.begin(sub.label, stage):
            log.info("%s", line)
        t0 = time.time()
        try:
            if stage in ("dpo", "sft"):
                # What is about to train: contamination inventory and train/eval overlap (stops on overlap).
                from character.data_overlap import audit_stage_input

                audit_stage_input(sub.cfg, d, stage)
            manifest = fn(self.stage_config(sub.cfg), d, progress=self.progress, tracker=tracker)
            check_stage_output(d, stage, manifest)
        except BaseException as e:
            entries[stage].update(status="failed", error=str(e), duration_s=round(time.time() - t0, 3))
            write_state(d, state)
            raise
        entries[stage].update(status="done", duration_s=round(time.time() - t0, 3))
        self.overall.done(sub.label, stage, time.time() - t0)
        write_state(d, state)
        atomic_write_json(d / "cost.json", tracker.as_json())


def check_stage_output(run_dir: Path, stage: str, manifest: Manifest | None) -> None:
    """The runner's own last look: a stage that returned must have finished and trained finitely."""
    if manifest is None or read_manifest(run_dir / stage) is None:
        raise CharacterError(f"stage '{stage}' returned without writing {run_dir / stage / 'manifest.json'}")
    if manifest.status not in ("done", "ok", "finished"):
        raise CharacterError(f"stage '{stage}' finished with status {manifest.status!r}; see its manifest")
    metrics = run_dir / stage / "metrics.jsonl"
    if stage in ("dpo", "sft") and metrics.exists():
        for n, line in enumerate(metrics.read_text().splitlines(), 1):
            row = json.loads(line) if line.strip() else {}
            for k, v in row.items():
                if k.startswith(("loss", "train_loss", "eval_loss", "rewards/", "grad_norm")) and not _finite(
                    v
                ):
                    raise TrainingAborted(f"{stage}: {metrics}:{n} has non-finite {k} = {v}")


def _finite(v: Any) -> bool:
    if isinstance(v, bool):
        return True
    if isinstance(v, int | float):
        return math.isfinite(v)
    if isinstance(v, str):
        try:
            return math.isfinite(float(v))
        except ValueError:
            return True
    return True


def _supersede(run_dir: Path, stage: str) -> None:
    dest = run_dir / "superseded" / f"{stage}-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**6}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(run_dir / stage), dest)
    log.info("moved the earlier %s output aside to %s", stage, dest)


def _seed(tracker: CostTracker, stage: str, manifest: Manifest) -> None:
    """Count a finished stage's tokens again, so a resumed run's budget covers what was already spent."""
    by_role = manifest.extra.get("role_tokens") if isinstance(manifest.extra, dict) else None
    items = (
        [(r, m, t) for r, models in by_role.items() for m, t in models.items()]
        if by_role
        else [(None, m, t) for m, t in manifest.tokens.items()]
    )
    for role, model, t in items:
        p = int(t.get("prompt", t.get("prompt_tokens", 0)))
        c = int(t.get("completion", t.get("completion_tokens", 0)))
        tracker.record(stage, model, p, c, role=role)


def _usd(models: Mapping[str, Any]) -> list[float]:
    return [float(m.get("usd", 0.0)) for m in models.values()]


def run_pipeline(resolved: Resolved, **kw: Any) -> PipelineResult:
    """Run (or, with `run_dir=`, resume) the pipeline. Keyword arguments are those of `Runner`."""
    return Runner(resolved, **kw).run()
