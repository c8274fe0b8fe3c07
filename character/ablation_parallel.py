"""Parallel ablation that fits the machine: one full pipeline per scale, each in its own process with
its own GPUs, a queue when there are more scales than GPU groups, and one shared budget.

GPU groups: the visible GPUs split into `pipeline.ablation_gpus_per_run` each (0: split evenly over
the scales, at least one each); `pipeline.ablation_concurrency` caps how many scales run at once (0:
one per group; on a machine without GPUs, 2). A scale's process sees only its group
(`CUDA_VISIBLE_DEVICES`, and `backend.gpus` for the servers it manages); on CPU each process gets an
equal share of the cores (`OMP_NUM_THREADS`). Managed servers pick free ports unless a port is pinned.

Budget: `--budget-usd` caps the whole ablation. Every scale's runner publishes its spend (smoke runs
included) to `budget.json` in the ablation directory (`character.budget_ledger`) and stops once the
sum over all scales reaches the cap.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from character.budget_ledger import ENV, Ledger
from character.config_layers import Resolved
from character.errors import CharacterError, ConfigError

log = logging.getLogger(__name__)

CPU_CONCURRENCY = 2


def visible_gpus() -> list[str]:
    """The GPU ids this process may hand out (CUDA_VISIBLE_DEVICES order, else 0..n-1)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - no torch or no driver: a CPU machine
        return []


def gpu_groups(gpus: list[str], n_scales: int, gpus_per_run: int, concurrency: int) -> list[list[str]]:
    """One GPU group per scale that may run at once ([] groups on a CPU machine)."""
    if not gpus:
        return [[] for _ in range(max(1, min(n_scales, concurrency or CPU_CONCURRENCY)))]
    if gpus_per_run > len(gpus):
        raise ConfigError(
            f"pipeline.ablation_gpus_per_run = {gpus_per_run} but only {len(gpus)} GPU(s) are visible: "
            f"set it to at most {len(gpus)} (0 splits them evenly)"
        )
    per = gpus_per_run or max(1, len(gpus) // max(1, n_scales))
    groups = [gpus[i : i + per] for i in range(0, len(gpus) - per + 1, per)]
    return groups[:concurrency] if concurrency else groups


def run_parallel(  # type: ignore[no-untyped-def]
    resolved: Resolved, root: Path, pcts: list[int], write_scale_config, *, until: str | None = None
) -> None:
    """Run `character pipeline` once per scale, at most len(groups) at a time; raise if any failed."""
    cfg = resolved.config
    ledger = Ledger.create(root / "budget.json", cfg.budget_usd)
    groups = gpu_groups(
        visible_gpus(), len(pcts), cfg.pipeline.ablation_gpus_per_run, cfg.pipeline.ablation_concurrency
    )
    threads = max(1, (os.cpu_count() or 1) // len(groups))
    queue = list(pcts)
    running: dict[int, tuple[subprocess.Popen[bytes], list[str], int]] = {}
    free = list(range(len(groups)))
    failed: list[int] = []
    log.info("parallel ablation: %d scale(s), %d at a time, GPU groups %s", len(pcts), len(groups), groups)
    try:
        while queue or running:
            while queue and free:
                pct, slot = queue.pop(0), free.pop(0)
                d = write_scale_config(pct)
                running[pct] = _start(
                    cfg.persona, pct, d, root, groups[slot], threads, ledger.path, until
                ) + (slot,)
            time.sleep(0.2)
            for pct, (proc, _gpus, slot) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[pct]
                free.append(slot)
                if proc.returncode != 0:
                    failed.append(pct)
                log.info("ablation %d%%: exit %d", pct, proc.returncode)
    finally:
        for proc, _gpus, _slot in running.values():
            proc.terminate()
    if failed:
        raise CharacterError(
            f"ablation runs at {', '.join(f'{p}%' for p in sorted(failed))} failed; see {root}/<pct>pct.log, fix, "
            f"and rerun with --resume {root}"
        )


def _start(
    persona: str,
    pct: int,
    d: Path,
    root: Path,
    gpus: list[str],
    threads: int,
    ledger: Path,
    until: str | None = None,
) -> tuple[subprocess.Popen[bytes], list[str]]:
    cmd = [sys.executable, "-m", "character", "pipeline", persona]
    cmd += ["--resume", str(d), "--name-suffix", f"{pct}pct", "--no-progress"]
    cmd += ["--until", until] if until else []
    env = {**os.environ, ENV: str(ledger)}
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        # Servers this run manages get the same GPUs (backend.gpus is read as physical ids).
        cmd += ["--set", f"backend.gpus=[{','.join(gpus)}]"]
    else:
        env["OMP_NUM_THREADS"] = str(threads)
        env["MKL_NUM_THREADS"] = str(threads)
    log_path = root / f"{pct}pct.log"
    log.info("ablation %d%%: %s (GPUs %s, log %s)", pct, " ".join(cmd), gpus or "none", log_path)
    with open(log_path, "a") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env)
    return proc, gpus
