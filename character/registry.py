"""The checkpoint registry: every stage registers what it saved, so `sample`, `chat`, `eval` and
`merge` can find checkpoints by name, and a `production` pointer per persona says what ships.

Stored as `artifacts/registry.json`, rewritten atomically. Names follow `{persona}[_{suffix}]_{stage}`
(e.g. `remorseful_dpo`, `remorseful_25pct_sft`); registering an existing name replaces the entry and
keeps the old one in its history.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from character import paths
from character.atomic import atomic_write_json
from character.errors import UsageError
from character.models import register_resolver


class Checkpoint(BaseModel):
    name: str
    path: str
    persona: str
    stage: str
    base: str
    run: str | None = None
    kind: str = "model"  # "model" (full weights) or "adapter" (PEFT adapter on `base`)
    metrics: dict[str, Any] = {}
    verified: bool = False
    created_at: float = Field(default_factory=time.time)


class Registry(BaseModel):
    checkpoints: dict[str, Checkpoint] = {}
    production: dict[str, str] = {}  # persona -> checkpoint name
    history: dict[str, list[str]] = {}  # persona -> earlier production names (for rollback)


def registry_path() -> Path:
    return paths.artifacts_dir() / "registry.json"


def load() -> Registry:
    p = registry_path()
    if not p.exists():
        return Registry()
    return Registry.model_validate(json.loads(p.read_text()))


def save(reg: Registry) -> None:
    atomic_write_json(registry_path(), reg.model_dump(mode="json"))


def checkpoint_name(persona: str, stage: str, suffix: str | None = None) -> str:
    return f"{persona}_{suffix}_{stage}" if suffix else f"{persona}_{stage}"


def register(ckpt: Checkpoint) -> Checkpoint:
    reg = load()
    reg.checkpoints[ckpt.name] = ckpt
    save(reg)
    return ckpt


def get(name: str) -> Checkpoint:
    reg = load()
    if name not in reg.checkpoints:
        known = ", ".join(sorted(reg.checkpoints)) or "none yet"
        raise UsageError(f"no checkpoint named '{name}' in the registry (known: {known})")
    return reg.checkpoints[name]


def _resolve(ref: str) -> Path | None:
    reg = load()
    if ref in reg.checkpoints:
        return Path(reg.checkpoints[ref].path)
    return None


register_resolver(_resolve)
