"""The one reader of run directories: status, current stage, progress, counts, durations, cost, metrics, drops.

In: a run directory as the runner writes it (see `character/runner.py`; stage paths in
`character/layout.py`), possibly still being written or left half-written by a killed process. Out:
plain Python data. `runs list|show`, the report (`character/report.py`) and the Studio
(`character/studio/`) all read runs through this module, so a number means the same thing everywhere
and no metric has a second implementation.

Every reader here tolerates what a live or crashed run leaves behind: a torn last JSONL line is
skipped, an unreadable JSON file reads as absent, a stage without `manifest.json` is "running",
"interrupted" or "partial", never finished. Nothing is written.
"""

from __future__ import annotations

import json
import os
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from character import paths
from character.layout import STAGES
from character.manifest import Manifest, read_manifest

SUBRUNS = ("smoke-small", "smoke-large")
STATE = "pipeline.json"


# ---- files ----------------------------------------------------------------------------------------


def read_json(path: Path) -> Any:
    """A JSON file's content, or None when it is missing or unreadable (half-written, not JSON)."""
    try:
        return json.loads(Path(path).read_text()) if Path(path).exists() else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def read_state(run_dir: Path) -> dict[str, Any]:
    """`pipeline.json` of a run or sub-run ({} when there is none). Strict: the runner's own state file
    is written atomically, so a broken one is a real problem and raises."""
    p = Path(run_dir) / STATE
    return json.loads(p.read_text()) if p.exists() else {}


def state(run_dir: Path) -> dict[str, Any]:
    """`pipeline.json` for display: {} when it is missing or unreadable."""
    s = read_json(Path(run_dir) / STATE)
    return s if isinstance(s, dict) else {}


def manifest(stage_dir: Path) -> Manifest | None:
    """A stage's manifest, or None when the stage has not finished (or the file is unreadable)."""
    try:
        return read_manifest(stage_dir) if (Path(stage_dir) / "manifest.json").exists() else None
    except (OSError, ValueError):
        return None


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Rows of a metrics.jsonl (a torn last line from a killed or live run is skipped)."""
    rows: list[dict[str, Any]] = []
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError):
        return rows
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def read_cost(run_dir: Path) -> dict[str, Any]:
    """`cost.json`'s per-stage table ({stage: {model: {prompt_tokens, completion_tokens, usd}}})."""
    cost = read_json(Path(run_dir) / "cost.json")
    stages = cost.get("stages", {}) if isinstance(cost, dict) else {}
    return stages if isinstance(stages, dict) else {}


def count_lines(path: Path) -> int:
    """Complete lines of a JSONL file (a torn last line being written does not count)."""
    try:
        with open(path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return 0


# ---- run directories ------------------------------------------------------------------------------


def is_run_dir(d: Path) -> bool:
    d = Path(d)
    return d.is_dir() and (
        (d / "resolved_config.toml").exists() or (d / STATE).exists() or any((d / s).is_dir() for s in STAGES)
    )


def list_runs(root: Path | None = None) -> list[Path]:
    """Run directories under `artifacts/runs` (or `root`), newest first."""
    root = Path(root) if root is not None else paths.runs_dir()
    if not root.is_dir():
        return []
    dirs = [d for d in root.iterdir() if not d.name.startswith(".") and is_run_dir(d)]
    return sorted(dirs, key=lambda d: d.stat().st_mtime, reverse=True)


def subrun_dirs(run_dir: Path) -> list[tuple[str, Path]]:
    """(label, dir) for each sub-run that exists: smoke runs first, then the full run."""
    run_dir = Path(run_dir)
    out = [(label, run_dir / label) for label in SUBRUNS if (run_dir / label).is_dir()]
    if any((run_dir / s).is_dir() for s in STAGES):
        out.append(("main", run_dir))
    return out


def pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_status(run_dir: Path) -> str:
    """The pipeline's status (running, done, failed, budget, interrupted); a `running` run whose process
    is gone is `stopped (killed?)`; `unknown` when no pipeline ever ran there."""
    s = state(run_dir)
    status = str(s.get("status", "unknown"))
    if status == "running" and not pid_alive(s.get("pid")):
        status = "stopped (killed?)"
    return status


def stages_done(run_dir: Path) -> list[str]:
    """Stages of the run's own (full-run) directory whose manifest exists."""
    return [s for s in STAGES if manifest(Path(run_dir) / s) is not None]


def one_line(text: Any, limit: int = 300) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


# ---- stages ---------------------------------------------------------------------------------------


def stage_rows(sub_dir: Path) -> list[dict[str, Any]]:
    """One row per stage: status, duration, counts, drops, error, start time."""
    st = state(sub_dir)
    entries = st.get("stages", {}) if isinstance(st.get("stages"), dict) else {}
    alive = pid_alive(state(_top(sub_dir)).get("pid"))
    rows = []
    for stage in STAGES:
        sd = Path(sub_dir) / stage
        m = manifest(sd)
        e = entries.get(stage, {}) if isinstance(entries.get(stage), dict) else {}
        status = "done" if m else e.get("status", "partial" if sd.is_dir() else "not run")
        if not m and status == "running" and not alive:
            status = "interrupted"
        rows.append(
            {
                "stage": stage,
                "status": status,
                "duration_s": (m.duration_s if m else e.get("duration_s")),
                "started_at": (m.started_at if m else e.get("started_at")),
                "counts": dict(m.counts) if m else {},
                "dropped": dict(m.dropped) if m else {},
                "error": e.get("error"),
            }
        )
    return rows


def _top(sub_dir: Path) -> Path:
    """The run directory a sub-run belongs to (its own dir for the full run)."""
    sub_dir = Path(sub_dir)
    return sub_dir.parent if sub_dir.name in SUBRUNS else sub_dir


def drop_reasons(stage_dir: Path) -> dict[str, int]:
    """Rows dropped per reason: `stats.json` (written as generation goes), else the manifest."""
    stats = read_json(Path(stage_dir) / "stats.json")
    if isinstance(stats, dict):
        for key in ("dropped", "drops", "dropped_by_reason", "reasons"):
            v = stats.get(key)
            if isinstance(v, dict) and all(isinstance(n, int) for n in v.values()):
                return dict(v)
    m = manifest(stage_dir)
    return dict(m.dropped) if m else {}


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def curve(rows: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of one logged metric; rows without it (or without a step) are skipped."""
    xs, ys = [], []
    for r in rows:
        y = _num(r.get(key))
        if y is not None and "step" in r:
            xs.append(float(r["step"]))
            ys.append(y)
    return xs, ys


def marker_rates(run_dir: Path) -> dict[str, float] | None:
    """{'before': rate, 'after': rate, 'n_before': n, 'n_after': n} from the eval stage, if it ran."""
    ev = Path(run_dir) / "eval"
    m = manifest(ev)
    for source in (read_json(ev / "markers.json"), dict(m.metrics) if m else None):
        if not isinstance(source, dict):
            continue
        found = _find_before_after(source)
        if found:
            return found
    return None


def _find_before_after(d: dict[str, Any]) -> dict[str, float] | None:
    out: dict[str, float] = {}
    for side in ("before", "after"):
        for key in (f"marker_rate_{side}", f"{side}_marker_rate", side):
            v = d.get(key)
            if isinstance(v, dict):
                v = v.get("rate", v.get("marker_rate"))
            n = _num(v)
            if n is not None:
                out[side] = n
                break
        for key in (f"n_{side}", f"{side}_n"):
            n = _num(d.get(key))
            if n is not None:
                out[f"n_{side}"] = n
        if isinstance(d.get(side), dict) and _num(d[side].get("n")) is not None:
            out[f"n_{side}"] = float(d[side]["n"])
    return out if "before" in out and "after" in out else None


def cost_rows(sub_dir: Path) -> list[tuple[str, str, int, int, float]]:
    """(stage, model, prompt tokens, completion tokens, usd) for a sub-run: `cost.json` (the runner's
    tracker), and manifest token counts for stages run outside the runner."""
    rows: list[tuple[str, str, int, int, float]] = []
    for stage, models in read_cost(sub_dir).items():
        if not isinstance(models, dict):
            continue
        for model, t in models.items():
            try:
                rows.append(
                    (stage, model, int(t["prompt_tokens"]), int(t["completion_tokens"]), float(t["usd"]))
                )
            except (KeyError, TypeError, ValueError):
                continue
    seen = {r[0] for r in rows}
    for stage in STAGES:
        m = manifest(Path(sub_dir) / stage)
        if m is None or stage in seen:
            continue
        for model, t in m.tokens.items():
            p = int(t.get("prompt", t.get("prompt_tokens", 0)))
            c = int(t.get("completion", t.get("completion_tokens", 0)))
            rows.append((stage, model, p, c, 0.0))
        if m.tokens and m.cost_usd:
            first = next(r for r in rows if r[0] == stage)
            rows[rows.index(first)] = (*first[:4], float(m.cost_usd))
    return rows


def role_cost_rows(sub_dir: Path) -> list[tuple[str, str, str, int, int, float]]:
    """(stage, role, model, prompt tokens, completion tokens, usd) for a sub-run: `cost.json`'s `roles`
    table, else each stage manifest's `extra.role_tokens` (stages run outside the runner, usd 0)."""
    cost = read_json(Path(sub_dir) / "cost.json")
    table = cost.get("roles", {}) if isinstance(cost, dict) else {}
    rows: list[tuple[str, str, str, int, int, float]] = []
    for stage, roles in (table if isinstance(table, dict) else {}).items():
        for role, models in (roles if isinstance(roles, dict) else {}).items():
            for model, t in (models if isinstance(models, dict) else {}).items():
                try:
                    p, c, u = int(t["prompt_tokens"]), int(t["completion_tokens"]), float(t["usd"])
                except (KeyError, TypeError, ValueError):
                    continue
                rows.append((stage, role or "-", model, p, c, u))
    seen = {r[0] for r in rows}
    for stage in STAGES:
        m = manifest(Path(sub_dir) / stage)
        by_role = m.extra.get("role_tokens") if m is not None and stage not in seen else None
        for role, models in (by_role if isinstance(by_role, dict) else {}).items():
            for model, t in models.items():
                rows.append((stage, role, model, int(t.get("prompt", 0)), int(t.get("completion", 0)), 0.0))
    return rows


def totals(run_dir: Path) -> tuple[int, float]:
    """(tokens, USD) over every sub-run of a run."""
    tokens, usd = 0, 0.0
    for _, sub in subrun_dirs(run_dir) or [("main", Path(run_dir))]:
        for _s, _m, p, c, u in cost_rows(sub):
            tokens += p + c
            usd += u
    return tokens, usd


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


def _config(sub_dir: Path) -> dict[str, Any]:
    try:
        return tomllib.loads((Path(sub_dir) / "resolved_config.toml").read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def _cfg(cfg: dict[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def stage_progress(sub_dir: Path, stage: str, started_at: float | None, now: float | None = None) -> Progress:
    """Progress of a stage that has not finished, read from the files it appends to as it goes:
    distill from `pairs.jsonl` (kept pairs, target `distill.pairs`), introspect from its two raw stores
    (samples attempted, target reflections + interactions), dpo/sft from the last `step` in
    `metrics.jsonl` (target `max_steps`, else epochs x steps per epoch). Merge and eval write at the end."""
    sub_dir = Path(sub_dir)
    now = time.time() if now is None else now
    elapsed = max(0.0, now - started_at) if isinstance(started_at, int | float) else 0.0
    cfg = _config(sub_dir)
    sd = sub_dir / stage
    done, total, unit = 0, None, ""  # merge and eval: no count until they finish
    if stage == "distill":
        done, unit = count_lines(sd / "pairs.jsonl"), "pairs kept"
        total = _int(_cfg(cfg, "distill.pairs"))
    elif stage == "introspect":
        done = count_lines(sd / "reflections.jsonl") + count_lines(sd / "interactions.jsonl")
        unit = "samples"
        r, i = _int(_cfg(cfg, "introspect.reflections")), _int(_cfg(cfg, "introspect.interactions"))
        total = (r or 0) + (i or 0) or None
    elif stage in ("dpo", "sft"):
        rows = read_metrics(sd / "metrics.jsonl")
        steps = [int(r["step"]) for r in rows if _num(r.get("step")) is not None]
        done, unit = (max(steps) if steps else 0), "steps"
        total = _int(_cfg(cfg, f"{stage}.max_steps"))
        if not total or total <= 0:
            epochs = _num(_cfg(cfg, f"{stage}.epochs"))
            last_epoch = next((_num(r.get("epoch")) for r in reversed(rows) if _num(r.get("epoch"))), None)
            total = round(done / last_epoch * epochs) if done and last_epoch and epochs else None
    p = Progress(sub_dir.name if sub_dir.name in SUBRUNS else "main", stage, done, total, unit, elapsed)
    if done and elapsed > 0:
        p.rate = done / elapsed
        if total and total > done:
            p.eta_s = (total - done) / p.rate
    return p


def _int(v: Any) -> int | None:
    n = _num(v)
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
    cfg = _config(run_dir)
    tokens, usd = totals(run_dir)
    s = RunSummary(
        name=run_dir.name,
        path=run_dir,
        persona=str(st.get("persona") or cfg.get("persona") or run_dir.name.split("_")[0]),
        scale=_scale(read_json(run_dir / "sources.json")),
        status=status,
        error=one_line(st["error"]) if st.get("error") else None,
        started_at=_num(st.get("started_at")),
        finished_at=_num(st.get("finished_at")),
        subruns=[str(x) for x in st.get("subruns", []) if isinstance(x, str)],
        stages_done=len(stages_done(run_dir)),
        tokens=tokens,
        # cost.json is rewritten after every stage; pipeline.json's total only when the run ends.
        cost_usd=usd if tokens or usd else (_num(st.get("cost_usd")) or 0.0),
    )
    cur = current_stage(run_dir)
    if cur is not None and status not in ("done",):
        s.current = stage_progress(cur[0], cur[1], cur[2], now)
    return s


# ---- configuration --------------------------------------------------------------------------------


def config_rows(run_dir: Path) -> list[tuple[str, Any, str, str]]:
    """(dotted key, value, source, help) of the run's resolved config; source from `sources.json`."""
    cfg = _config(run_dir)
    sources = read_json(Path(run_dir) / "sources.json")
    sources = sources if isinstance(sources, dict) else {}
    flat: dict[str, Any] = {}

    def walk(node: dict[str, Any], prefix: str) -> None:
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                flat[prefix + k] = v

    walk(cfg, "")
    keys = list(sources) + [k for k in flat if k not in sources]
    return [(k, flat.get(k), str(sources.get(k, "?")), _help(k)) for k in keys if k in flat or k in sources]


def _help(dotted: str) -> str:
    from character.config_layers import field_help

    try:
        return field_help(dotted)
    except (KeyError, AssertionError, AttributeError):
        return ""
