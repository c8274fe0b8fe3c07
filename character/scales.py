"""How a pipeline run's config is resolved: named scales, numeric scales and resumed runs.

- `--scale NAME` applies the preset `configs/presets/NAME.toml` (smoke, demo, micro, quarter, half,
  full, default, paper, ...). `smoke` runs only the smoke runs (smoke-small, then smoke-large).
- `--scale 0.25` (or `25%`, `25pct`) multiplies the data sizes (DPO pairs, reflections, interactions)
  of whatever the other layers resolved; hyperparameters are untouched.
- `--resume RUN_DIR` takes the run's saved `resolved_config.toml` as the base (so resuming needs no
  flags), with the environment and command-line flags still on top; the runner then refuses any
  change a finished stage depends on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from character.config_layers import Resolved, get_value, resolve
from character.errors import ConfigError, UsageError

# Data sizes a numeric scale multiplies (the counts the paper's ablation varied: 1500/10000/2000).
DATA_KEYS = ("distill.pairs", "introspect.reflections", "introspect.interactions")
_NUMERIC = re.compile(r"^(\d+(?:\.\d+)?)\s*(%|pct)?$")


def parse_scale(scale: str | None) -> tuple[str | None, float | None]:
    """-> (preset name, None) or (None, fraction) or (None, None)."""
    if scale is None or scale == "":
        return None, None
    m = _NUMERIC.match(scale.strip().lower())
    if not m:
        return scale, None
    value = float(m.group(1))
    frac = value / 100 if m.group(2) else value
    if not 0 < frac <= 1:
        raise ConfigError(
            f"--scale {scale} is out of range: give a fraction in (0, 1] (e.g. 0.25) or a percentage (25%)"
        )
    return None, frac


def scaled_sizes(resolved: Resolved, frac: float, skip: set[str]) -> dict[str, int]:
    out = {}
    for key in DATA_KEYS:
        if key in skip:
            continue
        v = int(get_value(resolved.config, key))
        out[key] = max(1, math.ceil(v * frac)) if v > 0 else 0
    return out


def resolve_run(
    *,
    paper_scale: bool = False,
    scale: str | None = None,
    config_file: Path | None = None,
    env_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    resume_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Resolved:
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if resume_dir is not None:
        saved = Path(resume_dir) / "resolved_config.toml"
        if not saved.exists():
            raise UsageError(f"--resume {resume_dir}: not a run directory (no resolved_config.toml)")
        if scale or config_file:
            raise UsageError(
                "--resume takes the run's saved config as its base; drop --scale/--config and change "
                "single settings with --set KEY=VALUE (finished stages refuse changes they depend on)"
            )
        return resolve(config_file=saved, env_file=env_file, environ=environ, overrides=overrides)
    preset, frac = parse_scale(scale)
    presets = (["paper"] if paper_scale else []) + ([preset] if preset else [])
    kw = dict(config_file=config_file, env_file=env_file, environ=environ)
    res = resolve(presets=presets, overrides=overrides, **kw)  # type: ignore[arg-type]
    if frac is None or frac == 1.0:
        return res
    explicit = {k for k, s in res.sources.items() if s == "cli" or s.startswith("env")}
    sizes = scaled_sizes(res, frac, explicit)
    out = resolve(presets=presets, overrides={**sizes, **overrides}, **kw)  # type: ignore[arg-type]
    for k in sizes:
        out.sources[k] = f"scale:{frac:g}"
    out.layers.insert(len(presets) + 1, f"scale:{frac:g}")
    return out
