"""The checkpoint registry: every stage registers what it saved, so `sample`, `chat`, `eval` and
`merge` can find checkpoints by name, and a `production` pointer per persona says what ships.

Stored as `artifacts/registry.json`, rewritten atomically under a file lock (parallel runs of an
ablation register at the same time; a read-modify-write without the lock loses entries). Names follow
`{persona}[_{suffix}]_{stage}` (e.g. `remorseful_dpo`, `remorseful_25pct_sft`); registering an existing
name replaces the entry.

Promotion moves a persona's `production` pointer and pushes the previous one onto that persona's
history; `rollback` pops it back. An unverified checkpoint (its logged metrics were never
re-computed from the saved weights) is not promoted unless forced.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from collections.abc import Iterator
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


class Promotion(BaseModel):
    """One move of a production pointer (kept for `checkpoint show` and audits of what shipped when)."""

    persona: str
    name: str
    previous: str | None = None
    at: float = Field(default_factory=time.time)
    reason: str = ""
    action: str = "promote"  # promote | rollback


class Registry(BaseModel):
    checkpoints: dict[str, Checkpoint] = {}
    production: dict[str, str] = {}  # persona -> checkpoint name
    history: dict[str, list[str]] = {}  # persona -> earlier production names (for rollback)
    log: list[Promotion] = []


def registry_path() -> Path:
    return paths.artifacts_dir() / "registry.json"


def load() -> Registry:
    p = registry_path()
    if not p.exists():
        return Registry()
    try:
        return Registry.model_validate(json.loads(p.read_text()))
    except (json.JSONDecodeError, ValueError) as e:
        raise UsageError(
            f"the checkpoint registry {p} is not valid ({str(e).splitlines()[0]}); fix or move it aside"
        ) from e


def save(reg: Registry) -> None:
    atomic_write_json(registry_path(), reg.model_dump(mode="json"))


@contextlib.contextmanager
def _locked() -> Iterator[Registry]:
    """Load, yield for changes, save: all under an exclusive lock on a sidecar lock file."""
    lock = registry_path().with_suffix(".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            reg = load()
            yield reg
            save(reg)
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def checkpoint_name(persona: str, stage: str, suffix: str | None = None) -> str:
    return f"{persona}_{suffix}_{stage}" if suffix else f"{persona}_{stage}"


def register(ckpt: Checkpoint) -> Checkpoint:
    with _locked() as reg:
        reg.checkpoints[ckpt.name] = ckpt
    return ckpt


def get(name: str) -> Checkpoint:
    reg = load()
    if name not in reg.checkpoints:
        known = ", ".join(sorted(reg.checkpoints)) or "none yet"
        raise UsageError(f"no checkpoint named '{name}' in the registry (known: {known})")
    return reg.checkpoints[name]


def find(name: str) -> Checkpoint | None:
    """The entry named `name`, or None (no error)."""
    return load().checkpoints.get(name)


def list_checkpoints(persona: str | None = None, stage: str | None = None) -> list[Checkpoint]:
    """Entries, newest first, optionally for one persona and/or stage."""
    items = [
        c
        for c in load().checkpoints.values()
        if (persona is None or c.persona == persona) and (stage is None or c.stage == stage)
    ]
    return sorted(items, key=lambda c: c.created_at, reverse=True)


def update_metrics(name: str, metrics: dict[str, Any]) -> Checkpoint:
    """Merge `metrics` into an entry's metrics (e.g. eval numbers measured after it was saved)."""
    with _locked() as reg:
        if name not in reg.checkpoints:
            raise UsageError(f"no checkpoint named '{name}' in the registry")
        ck = reg.checkpoints[name]
        ck.metrics = {**ck.metrics, **metrics}
    return ck


def production(persona: str) -> Checkpoint | None:
    """The checkpoint `persona`'s production pointer names, or None."""
    reg = load()
    name = reg.production.get(persona)
    return reg.checkpoints.get(name) if name else None


def production_ref(persona: str) -> str:
    """The registry name that ships for `persona`; a clear error when nothing was promoted yet."""
    reg = load()
    name = reg.production.get(persona)
    if not name:
        raise UsageError(
            f"persona '{persona}' has no production checkpoint yet: promote one with "
            "`character checkpoint promote NAME`, or pass --checkpoint"
        )
    if name not in reg.checkpoints:
        raise UsageError(f"production pointer of '{persona}' names '{name}', which is not registered")
    return name


def promote(name: str, *, reason: str = "", force: bool = False) -> Promotion:
    """Point the checkpoint's persona's `production` at `name`; the old pointer goes to history."""
    with _locked() as reg:
        if name not in reg.checkpoints:
            known = ", ".join(sorted(reg.checkpoints)) or "none yet"
            raise UsageError(f"no checkpoint named '{name}' in the registry (known: {known})")
        ck = reg.checkpoints[name]
        if not Path(ck.path).exists():
            raise UsageError(f"checkpoint '{name}' points at {ck.path}, which does not exist; re-register it")
        if not ck.verified and not force:
            raise UsageError(
                f"checkpoint '{name}' is not verified (its metrics were never re-computed from the saved "
                "weights); verify it or pass --force to promote it anyway"
            )
        previous = reg.production.get(ck.persona)
        if previous == name:
            raise UsageError(f"'{name}' is already production for '{ck.persona}'")
        if previous:
            reg.history.setdefault(ck.persona, []).append(previous)
        reg.production[ck.persona] = name
        event = Promotion(persona=ck.persona, name=name, previous=previous, reason=reason)
        reg.log.append(event)
    return event


def rollback(persona: str, *, reason: str = "") -> Promotion:
    """Restore `persona`'s previous production checkpoint."""
    with _locked() as reg:
        hist = reg.history.get(persona) or []
        current = reg.production.get(persona)
        if not hist:
            raise UsageError(
                f"persona '{persona}' has no earlier production checkpoint to roll back to "
                f"(current: {current or 'none'})"
            )
        name = hist.pop()
        reg.production[persona] = name
        event = Promotion(persona=persona, name=name, previous=current, reason=reason, action="rollback")
        reg.log.append(event)
    return event


def personas_in_production() -> dict[str, str]:
    return dict(load().production)


def _resolve(ref: str) -> Path | None:
    reg = load()
    if ref in reg.checkpoints:
        return Path(reg.checkpoints[ref].path)
    return None


register_resolver(_resolve)
