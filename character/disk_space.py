"""Disk space: what a stage is about to write, checked before it starts, and a full disk as one line.

A disk that fills while a model is saved costs the whole stage (hours of DPO on a large student) and
used to end in a traceback from deep inside safetensors or a language-ID model's temp copy. Each stage
that writes weights (`dpo`, `sft`, `merge`) checks its own need first (`require_for_stage`), whoever
runs it; the pipeline runner checks the sum of everything it has left before the first stage
(`require_for_run`). The need comes from the student's safetensors headers, read without loading a
tensor:

- `dpo` writes the merged model in fp32 (every parameter at 4 bytes, `character.training.dpo`) plus
  the LoRA adapter and its trainer checkpoints (adapter and two Adam moments, `train.save_total_limit`
  of them plus the one being written);
- `sft` writes the adapter and its checkpoints;
- `merge` writes the final model in the base's own dtype (plus one combined adapter with
  `merge.as_adapter`).

`pipeline.keep_free_gb` must stay free on top of that (data files, logs, temp copies). A run whose
student is not a local safetensors model (a hub id not yet fetched) is checked for that margin only.
Anything that still fills the disk is reported by `disk_full_error` as one line naming the path.
"""

from __future__ import annotations

import errno
import json
import shutil
import struct
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from character.errors import CharacterError

if TYPE_CHECKING:
    from character.config import RunConfig

GB = 1024**3
_DTYPE_BYTES = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2}
_NOT_ADAPTED = ("embed", "lm_head", "wte", "wpe", "norm")  # all-linear skips the head and embeddings
_DISK_FULL_TEXT = ("No space left on device", "StorageFull", "os error 28")


class DiskSpaceError(CharacterError):
    """Not enough free disk for what a stage is about to write, or the disk filled while writing."""


@dataclass(frozen=True)
class Weights:
    """What the safetensors headers of a model directory say, without reading a tensor."""

    elements: int  # parameters, all tensors
    stored_bytes: int  # as stored (the base's dtype)
    lora_elements: int  # parameters of a LoRA adapter of rank 1 on the targeted matrices


@dataclass(frozen=True)
class Need:
    stage: str
    parts: dict[str, int]  # what is written -> bytes

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def describe(self) -> str:
        return ", ".join(f"{name} {human_bytes(b)}" for name, b in self.parts.items() if b)


def human_bytes(n: float) -> str:
    return f"{n / GB:.1f} GB" if n >= GB / 10 else f"{n / 1024**2:.0f} MB"


def _targeted(name: str, shape: list[int], targets: list[str] | str) -> bool:
    if len(shape) != 2 or not name.endswith(".weight"):
        return False
    module = name[: -len(".weight")]
    if targets == "all-linear":
        leaf = module.rsplit(".", 1)[-1]
        return not any(part in leaf for part in _NOT_ADAPTED)
    return any(module == t or module.endswith(f".{t}") for t in targets)


def read_weights(model_dir: Path, targets: list[str] | str = "all-linear") -> Weights | None:
    """Sum the tensors listed in `model_dir/*.safetensors` headers; None when there are none."""
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        return None
    elements = stored = lora = 0
    for f in files:
        with f.open("rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        for name, info in header.items():
            if name == "__metadata__":
                continue
            numel = 1
            for d in info["shape"]:
                numel *= d
            elements += numel
            stored += numel * _DTYPE_BYTES.get(info["dtype"], 4)
            if _targeted(name, info["shape"], targets):
                lora += sum(info["shape"])  # rank 1: A is 1 x in, B is out x 1
    return Weights(elements, stored, lora)


def student_weights(cfg: RunConfig, model: str | None = None) -> Weights | None:
    """The weights of `model` (default: the student) as its headers state them; None when it is not a
    local model yet."""
    from character.models import resolve_model

    try:
        path = Path(resolve_model(model or cfg.models.student, local_only=True))  # a check never downloads
    except CharacterError:
        return None  # the stage itself reports an unknown model, with its own message
    return read_weights(path, cfg.lora.target_modules) if path.is_dir() else None


def stage_need(cfg: RunConfig, stage: str, weights: Weights | None) -> Need:
    """Bytes `stage` writes under its run directory (0 for the stages that write data only)."""
    if weights is None or stage not in ("dpo", "sft", "merge"):
        return Need(stage, {})
    adapter = 4 * cfg.lora.r * weights.lora_elements  # fp32 LoRA factors
    checkpoints = 3 * adapter * (cfg.train.save_total_limit + 1)
    if stage == "dpo":
        return Need(
            stage,
            {"fp32 merged model": 4 * weights.elements, "adapter and checkpoints": adapter + checkpoints},
        )
    if stage == "sft":
        return Need(stage, {"adapter and checkpoints": adapter + checkpoints})
    combined = adapter * 2 if cfg.merge.as_adapter else 0  # ranks concatenate
    return Need(stage, {"merged model": weights.stored_bytes, "combined adapter": combined})


def free_bytes(path: Path) -> int:
    """Free bytes on the filesystem that holds `path` (or its nearest existing parent)."""
    p = Path(path).resolve()
    while not p.exists():
        p = p.parent
    return shutil.disk_usage(p).free


def _check(where: Path, need: int, keep: int, what: str, detail: str) -> None:
    free = free_bytes(where)
    if free >= need + keep:
        return
    written = f"about {human_bytes(need)} ({detail}) and " if need else ""
    raise DiskSpaceError(
        f"{what} needs {written}pipeline.keep_free_gb = {keep / GB:g} GB free under {where}, but only "
        f"{human_bytes(free)} is free: free some space (`character runs prune` lists the runs that can go), point CHARACTER_ARTIFACTS "
        "at a larger disk, or lower pipeline.keep_free_gb"
    )


def require_for_stage(cfg: RunConfig, where: Path, stage: str, *, model: str | None = None) -> None:
    """Stop before `stage` starts when the disk holding `where` (its run or output directory) cannot
    take what it will write; `model` is the base whose weights it writes (default: the student)."""
    need = stage_need(cfg, stage, student_weights(cfg, model))
    keep = int(cfg.pipeline.keep_free_gb * GB)
    _check(Path(where), need.total, keep, f"the {stage} stage", need.describe())


def require_for_run(cfg: RunConfig, run_dir: Path, todo: Iterable[tuple[RunConfig, str]]) -> None:
    """Stop before a pipeline starts when the stages it has left (config, stage) cannot all be written;
    the system temp dir, where libraries copy models and datasets, must keep the margin too."""
    weights = student_weights(cfg)
    needs = [stage_need(c, s, weights) for c, s in todo]
    total = sum(n.total for n in needs)
    keep = int(cfg.pipeline.keep_free_gb * GB)
    stages = sum(1 for n in needs if n.total)
    detail = (
        f"{stages} stages that write weights, the largest {max(needs, key=lambda n: n.total).describe()}"
        if stages
        else ""
    )
    _check(Path(run_dir), total, keep, "this run", detail)
    tmp = Path(tempfile.gettempdir())
    if free_bytes(tmp) < keep:
        _check(tmp, 0, keep, "the temp dir (TMPDIR)", "")


def is_disk_full(e: BaseException) -> bool:
    """ENOSPC, or a library's wrapping of it (safetensors' StorageFull, torch's 'file write failed')."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno == errno.ENOSPC:
            return True
        if any(t in str(cur) for t in _DISK_FULL_TEXT):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def disk_full_error(e: BaseException) -> DiskSpaceError:
    """The one line for a disk that filled mid-write: where, how much is free now, and what to do."""
    from character import paths

    where = getattr(e, "filename", None)
    at = f" while writing {where}" if where else ""
    spots = {"artifacts": paths.artifacts_dir(), "TMPDIR": Path(tempfile.gettempdir())}
    free = ", ".join(f"{name} {p}: {human_bytes(free_bytes(p))} free" for name, p in spots.items())
    return DiskSpaceError(
        f"the disk filled up{at} (no space left on device; {free}); a model being saved is not kept "
        "(models are written atomically) and a torn JSONL line is cut on resume: free some space or point "
        "CHARACTER_ARTIFACTS / TMPDIR at a larger disk, then resume the run with --resume"
    )
