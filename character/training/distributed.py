"""Who am I in a multi-process training launch, and how the others wait for the main process.

Under `accelerate launch` (or torchrun) every process runs the same stage code. Only the main process
(global rank 0) may clear outputs, write files, verify, merge, register and write the manifest; the
others wait at a barrier. A stage never calls `torch.distributed` itself: it uses these helpers, which
are no-ops in a plain single process, so one code path serves both.

`on_main(fn)` runs `fn` on the main process only and hands its outcome to every rank: when the main
process raises a `CharacterError`, every other rank raises the same class with the same message (a
rank that waited forever for a main process that failed would hang the launch instead of exiting).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

from character import errors

log = logging.getLogger(__name__)

T = TypeVar("T")


def under_launcher() -> bool:
    """True inside `accelerate launch` / torchrun (even with one process), so we never launch again."""
    return "WORLD_SIZE" in os.environ or "ACCELERATE_MIXED_PRECISION" in os.environ


def world_size() -> int:
    """Processes training together (1 outside a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def rank() -> int:
    """Global rank of this process (0 outside a launcher)."""
    return int(os.environ.get("RANK", "0") or 0)


def local_rank() -> int:
    """Rank of this process on its machine: the index of its GPU."""
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def is_main() -> bool:
    """The one process that writes, verifies, merges and registers."""
    return rank() == 0


def device(preference: str = "auto") -> str:
    """This process's device: `cuda:<local rank>` on GPUs, else `cpu`."""
    from character.models import pick_device

    dev = pick_device(preference)
    return f"cuda:{local_rank()}" if dev == "cuda" else dev


def _group_ready() -> bool:
    """Start the process group when there is more than one process (accelerate's state does it once)."""
    if world_size() <= 1:
        return False
    import torch.distributed as dist

    if not dist.is_initialized():
        from accelerate import PartialState

        PartialState()  # reads the launcher's environment; gloo on CPU, nccl on CUDA
    return dist.is_initialized()


def barrier() -> None:
    """Every process waits here until all have arrived (no-op in a single process)."""
    if _group_ready():
        import torch.distributed as dist

        dist.barrier()


def broadcast(obj: T) -> T:
    """The main process's `obj`, on every process (a picklable value)."""
    if not _group_ready():
        return obj
    import torch.distributed as dist

    box = [obj if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[return-value]


def on_main(fn: Callable[[], T]) -> T:
    """Run `fn` on the main process; the others wait, then get its (picklable) result.

    A CharacterError on main is raised on every rank with the same class and message.
    """
    if world_size() <= 1:
        return fn()
    result: Any = None
    if is_main():
        try:
            result = fn()
        except errors.CharacterError as e:
            broadcast((type(e).__name__, str(e)))
            raise
        except BaseException as e:
            # Not ours (a bug, an OOM): the others must still stop, with a line naming the cause.
            broadcast(("CharacterError", f"the main process failed: {type(e).__name__}: {e}"))
            raise
    shared: Any = broadcast(("ok", result) if is_main() else None)
    if shared[0] != "ok":
        name, message = shared
        cls = getattr(errors, name, errors.CharacterError)
        raise cls(message)
    return shared[1]


def eval_batches(n: int, micro: int, world: int) -> list[list[int]]:
    """Row indices of each evaluation micro-batch, in the order the trainer gathers them.

    One process: sequential batches, the last one short. N processes: accelerate shards batch i to rank
    i mod N and, with even batches, tops the set up with rows from its start until every rank has
    the same number of full batches; gathered step by step and rank by rank, that is the padded list
    cut into micro-batches. Verification replays this so it measures what the trainer reported.
    """
    if world <= 1:
        return [list(range(i, min(i + micro, n))) for i in range(0, n, micro)]
    group = micro * world
    total = -(-n // group) * group
    m = min(n, group)
    idx = list(range(n)) + [j % m for j in range(total - n)]
    return [idx[i : i + micro] for i in range(0, total, micro)]


def standalone_loading() -> None:
    """Let the main process load plain full models after a ZeRO-3 training run.

    transformers keeps DeepSpeed's config in a global while a trainer lives; a fresh `from_pretrained`
    would then be partitioned across processes that are not taking part (they wait at a barrier).
    """
    try:
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config
    except ImportError:  # pragma: no cover - older transformers
        return
    unset_hf_deepspeed_config()


def shutdown() -> None:
    """Leave the process group together: a process that exits while another still talks to it makes
    gloo abort (SIGABRT), which would turn a finished launch into a failed one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
