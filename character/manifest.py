"""Per-stage manifests: written atomically and last, so a manifest's presence means the stage finished.

A manifest records what went in and came out (counts, drops by reason), how long it took, the config
hash, seeds, package versions and the git sha, so any run can be traced and resumed.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from character import paths
from character.atomic import atomic_write_json

MANIFEST = "manifest.json"
_PACKAGES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets")


class Manifest(BaseModel):
    stage: str
    config_hash: str
    status: str = "done"
    started_at: float = Field(default_factory=time.time)
    finished_at: float | None = None
    duration_s: float | None = None
    seed: int | None = None
    counts: dict[str, int] = {}
    dropped: dict[str, int] = {}
    outputs: dict[str, str] = {}
    metrics: dict[str, Any] = {}
    tokens: dict[str, dict[str, int]] = {}
    cost_usd: float = 0.0
    versions: dict[str, str] = Field(default_factory=lambda: package_versions())
    git_sha: str | None = Field(default_factory=lambda: git_sha())
    extra: dict[str, Any] = {}

    def finish(self) -> Manifest:
        self.finished_at = time.time()
        self.duration_s = round(self.finished_at - self.started_at, 3)
        return self


def package_versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    from character import __version__

    out["character"] = __version__
    return out


def git_sha() -> str | None:
    try:
        res = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=paths.project_root(), capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


def write_manifest(stage_dir: Path, manifest: Manifest) -> Path:
    path = Path(stage_dir) / MANIFEST
    atomic_write_json(path, manifest.model_dump(mode="json"))
    return path


def read_manifest(stage_dir: Path) -> Manifest | None:
    path = Path(stage_dir) / MANIFEST
    if not path.exists():
        return None
    return Manifest.model_validate(json.loads(path.read_text()))
