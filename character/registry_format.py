"""The registry's stored shapes (format 2), its names and versions, and the migration from format 1.

`character.registry` holds the operations (register, promote, rollback, serve); this module holds only
data: `Checkpoint` (an immutable, hashed entry), `Pin` (the exact files production or history stands
for), `Promotion` (one logged move), `Registry` (the whole file), and how a name maps to a version.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pydantic import BaseModel, Field

from character.errors import UsageError
from character.fingerprint import weights_sha256

log = logging.getLogger(__name__)

FORMAT = 2


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
    sha256: str | None = None  # of the weight files at `path`, when registered (None: files were missing)


class Pin(BaseModel):
    """The exact files a production pointer or history entry stands for."""

    name: str
    path: str
    sha256: str | None
    kind: str = "model"
    base: str = ""

    @classmethod
    def of(cls, ck: Checkpoint) -> Pin:
        return cls(name=ck.name, path=ck.path, sha256=ck.sha256, kind=ck.kind, base=ck.base)


class Promotion(BaseModel):
    """One move of a production pointer (kept for `checkpoint show` and audits of what shipped when)."""

    persona: str
    name: str
    previous: str | None = None
    at: float = Field(default_factory=time.time)
    reason: str = ""
    action: str = "promote"  # promote | rollback
    sha256: str | None = None
    forced: bool = False
    evidence: str | None = None  # the compare record the promotion rested on


class Registry(BaseModel):
    format: int = FORMAT
    checkpoints: dict[str, Checkpoint] = {}
    production: dict[str, Pin] = {}  # persona -> what ships
    history: dict[str, list[Pin]] = {}  # persona -> earlier production pins (for rollback)
    log: list[Promotion] = []

    def pins(self) -> list[Pin]:
        return list(self.production.values()) + [p for h in self.history.values() for p in h]


# ---- names and versions ---------------------------------------------------------------------------


def checkpoint_name(persona: str, stage: str, suffix: str | None = None) -> str:
    return f"{persona}_{suffix}_{stage}" if suffix else f"{persona}_{stage}"


def family(name: str) -> str:
    return name.split("@", 1)[0]


def version_of(name: str) -> int:
    return int(name.split("@", 1)[1]) if "@" in name else 1


def exact_ref(name: str) -> str:
    """A reference that always means this entry (a bare name means the newest version)."""
    return name if "@" in name else f"{name}@1"


def lookup(reg: Registry, ref: str) -> Checkpoint | None:
    if "@" in ref:
        fam, _, v = ref.partition("@")
        if not v.isdigit():
            return None
        return reg.checkpoints.get(fam if int(v) == 1 else f"{fam}@{int(v)}")
    members = [c for c in reg.checkpoints.values() if family(c.name) == ref]
    return max(members, key=lambda c: version_of(c.name)) if members else None


def migrate(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """Format 1 (names, no hashes) -> 2: hash the entries whose files exist, pin production/history."""
    cks = dict(raw.get("checkpoints") or {})
    hashed, missing = 0, []
    for name, d in cks.items():
        if isinstance(d, dict) and not d.get("sha256"):
            try:
                d["sha256"] = weights_sha256(d.get("path", ""))
                hashed += 1
            except UsageError:
                d["sha256"] = None
                missing.append(name)

    def pin(name: Any) -> Any:
        if not isinstance(name, str):
            return name
        d = cks.get(name)
        if not isinstance(d, dict):
            return {"name": name, "path": "", "sha256": None}
        keys = ("name", "path", "sha256", "kind", "base")
        return {k: d.get(k) for k in keys if d.get(k) is not None} | {"sha256": d.get("sha256")}

    out = dict(raw)
    out["format"] = FORMAT
    out["checkpoints"] = cks
    out["production"] = {p: pin(n) for p, n in (raw.get("production") or {}).items()}
    out["history"] = {p: [pin(n) for n in h] for p, h in (raw.get("history") or {}).items()}
    log.warning(
        "registry %s predates weight hashes: migrated to format %d (hashed %d entries as their files are "
        "now%s; production and history now pin those hashes)",
        where,
        FORMAT,
        hashed,
        f"; files missing for {', '.join(missing)}" if missing else "",
    )
    return out
