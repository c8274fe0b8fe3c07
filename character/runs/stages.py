"""Per-stage readings of a run: stage rows, drops, curves, marker rates, tokens and cost, config sources.

Part of `character.runs` (import from there). A stage without `manifest.json` is "running",
"interrupted" or "partial", never finished.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from character.layout import STAGES
from character.runs.files import (
    SUBRUNS,
    manifest,
    number,
    pid_alive,
    read_cost,
    read_json,
    resolved_config,
    state,
    subrun_dirs,
)

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


def curve(rows: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of one logged metric; rows without it (or without a step) are skipped."""
    xs, ys = [], []
    for r in rows:
        y = number(r.get(key))
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
            n = number(v)
            if n is not None:
                out[side] = n
                break
        for key in (f"n_{side}", f"{side}_n"):
            n = number(d.get(key))
            if n is not None:
                out[f"n_{side}"] = n
        if isinstance(d.get(side), dict) and number(d[side].get("n")) is not None:
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
                    (
                        stage,
                        model,
                        int(t["prompt_tokens"]),
                        int(t["completion_tokens"]),
                        float(t["usd"]),
                    )
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
                    p, c, u = (
                        int(t["prompt_tokens"]),
                        int(t["completion_tokens"]),
                        float(t["usd"]),
                    )
                except (KeyError, TypeError, ValueError):
                    continue
                rows.append((stage, role or "-", model, p, c, u))
    seen = {r[0] for r in rows}
    for stage in STAGES:
        m = manifest(Path(sub_dir) / stage)
        by_role = m.extra.get("role_tokens") if m is not None and stage not in seen else None
        for role, models in (by_role if isinstance(by_role, dict) else {}).items():
            for model, t in models.items():
                rows.append(
                    (
                        stage,
                        role,
                        model,
                        int(t.get("prompt", 0)),
                        int(t.get("completion", 0)),
                        0.0,
                    )
                )
    return rows


def totals(run_dir: Path) -> tuple[int, float]:
    """(tokens, USD) over every sub-run of a run."""
    tokens, usd = 0, 0.0
    for _, sub in subrun_dirs(run_dir) or [("main", Path(run_dir))]:
        for _s, _m, p, c, u in cost_rows(sub):
            tokens += p + c
            usd += u
    return tokens, usd


# ---- configuration --------------------------------------------------------------------------------


def config_rows(run_dir: Path) -> list[tuple[str, Any, str, str]]:
    """(dotted key, value, source, help) of the run's resolved config; source from `sources.json`."""
    cfg = resolved_config(run_dir)
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
