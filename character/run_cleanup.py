"""Which run directories can go, and deleting them: what `character runs prune` does.

Every pipeline run keeps its weights (a smoke-small, a smoke-large and a full run each write a merged
DPO model in fp32 and a final model), so `artifacts/runs` grows by several model sizes per run until
the disk-space gate (`character.disk_space`) refuses the next one. A run is kept when:

- production or rollback history pins files inside it (deleting them would break `chat --persona`
  and any rollback);
- it holds the newest version of a registered checkpoint name (what `--checkpoint NAME` resolves to);
- its pipeline is still running (its process is alive);
- it is among the `keep` newest runs.

Everything else is listed with its size; nothing is deleted unless asked (`--yes`). Deleting a run
whose older checkpoint versions are registered leaves those entries pointing at missing files, which
`checkpoint list` and `promote` already report as missing.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from character import registry, runs
from character.registry_format import Checkpoint, Registry, family, version_of


@dataclass(frozen=True)
class RunEntry:
    path: Path
    bytes: int
    status: str
    keep: str  # why it stays; "" when it can go


def dir_bytes(d: Path) -> int:
    """Bytes the files under `d` take, each inode once (copies of a run share weights by hard link)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for f in Path(d).rglob("*"):
        try:
            st = f.lstat()
        except OSError:  # deleted while we walk: a live run replaces files
            continue
        if f.is_symlink() or not f.is_file() or (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        total += st.st_size
    return total


def _inside(path: str, run: Path) -> bool:
    try:
        return Path(path).resolve().is_relative_to(run.resolve())
    except (OSError, ValueError):
        return False


def _newest(reg: Registry) -> dict[str, Checkpoint]:
    """Registered name -> its newest version (what a bare `--checkpoint NAME` resolves to)."""
    newest: dict[str, Checkpoint] = {}
    for ck in reg.checkpoints.values():
        fam = family(ck.name)
        if fam not in newest or version_of(ck.name) > version_of(newest[fam].name):
            newest[fam] = ck
    return newest


def _holders(run: Path, reg: Registry, newest: dict[str, Checkpoint]) -> list[str]:
    """Why the registry needs `run`: the pins and newest checkpoint versions whose files are inside it."""
    why = [f"pinned ({pin.name})" for pin in reg.pins() if pin.path and _inside(pin.path, run)]
    return why + [f"newest {fam}" for fam, ck in sorted(newest.items()) if _inside(ck.path, run)]


def plan(keep: int = 3, root: Path | None = None) -> list[RunEntry]:
    """Every run under `root` (default artifacts/runs), newest first, with why it stays or "" if it can go."""
    reg = registry.load()
    newest = _newest(reg)
    out = []
    for i, d in enumerate(runs.list_runs(root)):
        status = runs.run_status(d)
        reasons = _holders(d, reg, newest)
        if status == "running":
            reasons.insert(0, "running")
        if i < keep:
            reasons.append(f"one of the {keep} newest")
        out.append(RunEntry(d, dir_bytes(d), status, ", ".join(reasons)))
    return out


def prune(entries: list[RunEntry]) -> int:
    """Delete the entries that can go; returns the bytes freed."""
    freed = 0
    for e in entries:
        if e.keep:
            continue
        # A hidden name first: a half-deleted run must not list as a run (it would read as broken).
        gone = e.path.with_name(f".{e.path.name}.deleting")
        e.path.rename(gone)
        shutil.rmtree(gone)
        freed += e.bytes
    return freed
