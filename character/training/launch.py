"""Run a training stage under `accelerate launch`, as a child process, with the same files and gates.

When `train.num_processes` > 1, `train.num_machines` > 1 or `train.accelerate_config` is set, the dpo
and sft stages call `run_stage` instead of training in the current process. It writes the resolved
config and the stage's arguments to `<stage>/launch/request.json`, starts

    python -m accelerate.commands.launch --num_processes N [--multi_gpu | --config_file F] ...
        -m character.training.launch <stage>/launch/request.json

and waits. Every child process runs the stage function itself (`character/stages/<stage>.py`), which
is rank-aware: only the main process writes, verifies, merges and registers. A child that fails with
a `CharacterError` leaves its class and message in `<stage>/launch/error.json`, and the parent raises
the same error (TrainingAborted stays TrainingAborted, exit 1), so a launched stage fails exactly as an
in-process one does. Generation never goes through here: it stays on its engines.

`accelerate_config` names `ddp`, `zero2`, `zero3` (configs/accelerate/NAME.yaml) or a YAML path; the
command-line values (processes, machines, rank, main address and port) override the file's.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from character import errors
from character.atomic import atomic_write_json
from character.config import RunConfig, TrainConfig
from character.errors import CharacterError, ConfigError
from character.training import distributed

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
ACCELERATE_DIR = ROOT / "configs" / "accelerate"
NAMED_CONFIGS = ("ddp", "zero2", "zero3")


def wanted(cfg: RunConfig) -> bool:
    """Should this stage run under a launcher (and is it not already inside one)?"""
    t = cfg.train
    if distributed.under_launcher():
        return False
    return t.num_processes > 1 or t.num_machines > 1 or bool(t.accelerate_config)


def accelerate_config_path(value: str) -> Path:
    """`ddp` / `zero2` / `zero3` or a path to an accelerate YAML; a clear error for anything else."""
    if value in NAMED_CONFIGS:
        path = ACCELERATE_DIR / f"{value}.yaml"
    else:
        path = Path(value).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"train.accelerate_config = {value!r} is neither one of {', '.join(NAMED_CONFIGS)} nor an existing "
            "accelerate YAML file; pick one of those or give the path to your own (`accelerate config`)"
        )
    return path.resolve()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def accelerate_argv(train: TrainConfig, *, device: str, module_args: list[str], cpu_count: int) -> list[str]:
    """The `accelerate launch` command line for `python -m <module_args>` (pure: tested by its argv).

    `cpu_count` is kept for callers sizing threads; CPU threads go through `launch_env`."""
    if train.num_machines > 1 and (not train.main_process_ip or not train.main_process_port):
        raise ConfigError(
            f"train.num_machines = {train.num_machines} needs train.main_process_ip and a fixed "
            "train.main_process_port (the address every machine can reach on machine 0, e.g. port 29500)"
        )
    if train.num_processes < train.num_machines:
        raise ConfigError(
            f"train.num_processes = {train.num_processes} counts the processes on all machines and must be at "
            f"least train.num_machines = {train.num_machines}"
        )
    argv = [sys.executable, "-m", "accelerate.commands.launch"]
    if train.accelerate_config:
        argv += ["--config_file", str(accelerate_config_path(train.accelerate_config))]
    elif device == "cpu" and train.num_processes == 1:
        argv += ["--cpu"]
    elif train.num_processes > 1:
        # On CPU too: accelerate's `--cpu` starts ONE process unless MPI is set up; its torchrun path
        # starts N, and `launch_env` makes them CPU processes (gloo).
        argv += ["--multi_gpu"]
    if not train.accelerate_config:
        argv += ["--mixed_precision", "no", "--dynamo_backend", "no"]  # precision comes from the trainer args
    argv += ["--num_processes", str(train.num_processes), "--num_machines", str(train.num_machines)]
    argv += ["--machine_rank", str(train.machine_rank)]
    if train.main_process_ip:
        argv += ["--main_process_ip", train.main_process_ip]
    argv += ["--main_process_port", str(train.main_process_port or free_port())]
    return argv + ["-m", *module_args]


def launch_env(train: TrainConfig, *, device: str, cpu_count: int) -> dict[str, str]:
    """Environment for the launch: on CPU, no GPUs, accelerate on CPU, a share of the cores each."""
    if device != "cpu":
        return {}
    return {
        "ACCELERATE_USE_CPU": "true",
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": str(max(1, cpu_count // train.num_processes)),
    }


def run_stage(stage: str, cfg: RunConfig, run_dir: Path, *, progress: bool = True, **kwargs: Any) -> Any:
    """Run `character.stages.<stage>.run` under accelerate; returns the manifest the main process wrote."""
    from character.manifest import read_manifest
    from character.models import pick_device

    run_dir = Path(run_dir)
    launch_dir = run_dir / stage / "launch"
    launch_dir.mkdir(parents=True, exist_ok=True)
    request = launch_dir / "request.json"
    error = launch_dir / "error.json"
    error.unlink(missing_ok=True)
    atomic_write_json(
        request,
        {
            "stage": stage,
            "run_dir": str(run_dir.resolve()),
            "config": cfg.model_dump(mode="json"),
            "progress": progress,
            "kwargs": {k: (str(v) if isinstance(v, Path) else v) for k, v in kwargs.items() if v is not None},
        },
    )
    device = pick_device(cfg.backend.device)
    argv = accelerate_argv(
        cfg.train,
        device=device,
        module_args=["character.training.launch", str(request)],
        cpu_count=os.cpu_count() or 1,
    )
    env = {**os.environ, **launch_env(cfg.train, device=device, cpu_count=os.cpu_count() or 1)}
    log.info("%s: %d training processes: %s", stage, cfg.train.num_processes, " ".join(argv))
    proc = subprocess.Popen(argv, env=env, start_new_session=True)
    try:
        rc = proc.wait()
    except BaseException:
        # Ctrl-C or a stop of the parent: the whole launch goes with it (checkpoints stay for --resume).
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        raise
    if rc != 0:
        raise _child_error(stage, rc, error)
    manifest = read_manifest(run_dir / stage)
    if manifest is None:
        raise CharacterError(f"the {stage} launch exited 0 but wrote no {run_dir / stage / 'manifest.json'}")
    return manifest


def _child_error(stage: str, rc: int, error: Path) -> CharacterError:
    try:
        info = json.loads(error.read_text())
    except (OSError, json.JSONDecodeError):
        return CharacterError(
            f"the {stage} training launch exited with code {rc} without an error report; see its output above "
            "(a killed process, out of memory or a failed rendezvous); fix and rerun with --resume"
        )
    cls = getattr(errors, str(info.get("class")), CharacterError)
    if not (isinstance(cls, type) and issubclass(cls, CharacterError)):
        cls = CharacterError
    return cls(str(info.get("message", "")))


def child_main(request_path: str) -> int:
    """One process of a launch: run the stage; the main process reports a CharacterError for the parent."""
    import importlib

    request = json.loads(Path(request_path).read_text())
    level = logging.INFO if distributed.is_main() else logging.WARNING
    logging.basicConfig(
        level=logging.WARNING, format=f"[rank {distributed.rank()}] %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("character").setLevel(level)
    cfg = RunConfig.model_validate(request["config"])
    kwargs = dict(request.get("kwargs", {}))
    for key in ("dataset",):
        if key in kwargs:
            kwargs[key] = Path(kwargs[key])
    stage = importlib.import_module(f"character.stages.{request['stage']}")
    try:
        stage.run(cfg, Path(request["run_dir"]), progress=bool(request.get("progress", True)), **kwargs)
    except CharacterError as e:
        if distributed.is_main():
            atomic_write_json(
                Path(request_path).parent / "error.json", {"class": type(e).__name__, "message": str(e)}
            )
        log.error("%s", e)
        return e.exit_code
    distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1]))
