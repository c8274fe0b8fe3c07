"""Run-directory files, read tolerantly: JSON, JSONL, state, manifests, cost, config; which dirs are runs.

Part of `character.runs` (import from there). Nothing here raises on a torn or half-written file: a
torn last JSONL line is skipped, an unreadable JSON file reads as absent. The runner's own strict read
of its state file is `read_state`.
"""

from __future__ import annotations

import json
import os
import tomllib
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


def number(v: Any) -> float | None:
    """A float from a number or numeric string (metrics rows log both); None otherwise (bools too)."""
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


def resolved_config(sub_dir: Path) -> dict[str, Any]:
    """`resolved_config.toml` as a plain dict ({} when missing or unreadable), not validated: old runs
    may carry keys the current schema dropped."""
    try:
        return tomllib.loads((Path(sub_dir) / "resolved_config.toml").read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def config_value(cfg: dict[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node
