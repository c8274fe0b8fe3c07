"""Where things live on disk.

`artifacts/` (git-ignored) holds models, runs and the checkpoint registry. It is the repository's
`artifacts/` for a source checkout, or `./artifacts` otherwise; `CHARACTER_ARTIFACTS` overrides both.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# A source checkout (editable install) has pyproject.toml one level up.
_CHECKOUT = PACKAGE_DIR.parent if (PACKAGE_DIR.parent / "pyproject.toml").exists() else None


def project_root() -> Path:
    """The checkout root when running from source, else the current directory."""
    return _CHECKOUT if _CHECKOUT is not None else Path.cwd()


def artifacts_dir() -> Path:
    env = os.environ.get("CHARACTER_ARTIFACTS")
    return Path(env).expanduser().resolve() if env else project_root() / "artifacts"


def models_dir() -> Path:
    return artifacts_dir() / "models"


def runs_dir() -> Path:
    return artifacts_dir() / "runs"


def presets_dir() -> Path:
    return project_root() / "configs" / "presets"


def constitutions_dir() -> Path:
    return project_root() / "constitutions" / "hand-written"
