"""Optional: score a checkpoint on EleutherAI lm-evaluation-harness tasks the user names, offline.

The shipped probes (`probes.py`) are a smoke alarm for forgetting; real runs also want the benchmarks
people report (MMLU, ARC, GSM8K, ...). This adapter runs them through `lm_eval` on the same checkpoint
references the rest of `character` takes (a model dir, an adapter dir on its base, a registry name,
`embedded`) and returns each task's metrics with their standard errors.

Never downloads: the hub and `datasets` are forced offline for the whole run, so a task whose data is
not already in the local cache (or a local task under `include_path`, e.g. a YAML with
`dataset_path: json` and local `data_files`) fails with one line naming the task and how to fetch it
once. Unknown task names are refused before any model is loaded.

Install with `pip install 'character[harness]'` (lm-eval 0.4.13); without it the command says so.
Run: `character eval harness --checkpoint remorseful_merged --tasks arc_easy,hellaswag --limit 200`.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib.util
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from character.errors import DataError, UsageError

log = logging.getLogger(__name__)

PIP_SPEC = "lm-eval==0.4.13"
_OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def available() -> bool:
    return importlib.util.find_spec("lm_eval") is not None


def require() -> None:
    if not available():
        raise UsageError(
            f"lm-evaluation-harness is not installed: pip install '{PIP_SPEC}' (or 'character[harness]')"
        )


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """Force the hub and `datasets` offline for the duration (restored afterwards)."""
    old = {k: os.environ.get(k) for k in _OFFLINE}
    os.environ.update(_OFFLINE)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def parse_tasks(tasks: str | list[str]) -> list[str]:
    names = tasks.split(",") if isinstance(tasks, str) else tasks
    out = [t.strip() for t in names if t.strip()]
    if not out:
        raise UsageError("--tasks is empty: name at least one lm-evaluation-harness task, e.g. arc_easy")
    return out


def task_manager(include_path: Path | None = None) -> Any:
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(include_path) if include_path else None)


def check_tasks(tasks: list[str], manager: Any) -> None:
    """Refuse unknown task names (with the closest known ones) before any model is loaded."""
    known = set(manager.all_tasks)
    for t in tasks:
        if t not in known:
            close = difflib.get_close_matches(t, sorted(known), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UsageError(f"lm-evaluation-harness has no task '{t}'{hint} (`lm-eval ls tasks` lists them)")


def summarize(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{task: {metric: value, metric_stderr: value}} from `simple_evaluate`'s results (filters dropped
    from the key when it is the default `none`)."""
    out: dict[str, dict[str, float]] = {}
    for task, metrics in results.get("results", {}).items():
        row: dict[str, float] = {}
        for key, value in metrics.items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            name, _, filt = key.partition(",")
            row[name if filt in ("", "none") else f"{name},{filt}"] = float(value)
        out[task] = row
    return out


@contextlib.contextmanager
def _missing_data(tasks: list[str]) -> Iterator[None]:
    """Turn `datasets`' offline failures into one line naming the tasks and the fix."""
    try:
        yield
    except (ConnectionError, OSError, ValueError) as e:
        text = str(e).lower()
        if not any(k in text for k in ("offline", "couldn't", "not found", "connect")):
            raise
        raise DataError(
            f"the data of task(s) {', '.join(tasks)} is not in the local cache and nothing is "
            f"downloaded at run time ({str(e).splitlines()[0]}); fetch it once where the network "
            "is reachable (`python -c \"import datasets; datasets.load_dataset('<dataset>')\"`) or "
            "point --include-path at a local task"
        ) from e


def run(
    model: str,
    tasks: list[str],
    *,
    adapter: str | None = None,
    limit: int | None = None,
    num_fewshot: int | None = None,
    batch_size: int = 8,
    device: str = "cpu",
    include_path: Path | None = None,
    seed: int = 1234,
) -> dict[str, Any]:
    """Evaluate `model` (a local directory; `adapter` on top of it) on `tasks`; offline throughout."""
    require()
    with offline():
        manager = task_manager(include_path)
        check_tasks(tasks, manager)
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import get_task_dict

        with _missing_data(tasks):  # load every task's data before the model: fail fast, in one line
            get_task_dict(tasks, manager)
        dtype = "bfloat16" if device.startswith("cuda") else "float32"  # as models.dtype_for: never fp16
        lm = HFLM(pretrained=model, peft=adapter, device=device, batch_size=batch_size, dtype=dtype)
        log.info("lm-eval: %s on %s (limit %s)", model, ", ".join(tasks), limit)
        with _missing_data(tasks):
            res = simple_evaluate(
                model=lm,
                tasks=tasks,
                num_fewshot=num_fewshot,
                limit=limit,
                task_manager=manager,
                log_samples=False,
                random_seed=seed,
                numpy_random_seed=seed,
                torch_random_seed=seed,
                fewshot_random_seed=seed,
            )
    if res is None:  # simple_evaluate returns None on non-zero ranks
        return {}
    return {
        "model": model,
        "adapter": adapter,
        "tasks": tasks,
        "limit": limit,
        "num_fewshot": num_fewshot,
        "metrics": summarize(res),
        "n_samples": {t: v.get("effective", v.get("original")) for t, v in res.get("n-samples", {}).items()},
        "versions": {k: str(v) for k, v in res.get("versions", {}).items()},
        "lm_eval": PIP_SPEC,
    }
