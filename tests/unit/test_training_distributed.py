"""Training past one process, without a model: the global batch, accelerate's eval sharding replayed,
the launch command line, main-only work with errors shared across real gloo processes, the saved-adapter
check, resumable-checkpoint bookkeeping, QLoRA and tracker errors, and the SLURM launcher's argv."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from character.config import LoraSettings, TrainConfig
from character.errors import ConfigError, TrainingAborted, VerificationError
from character.training import distributed, launch, resume
from character.training.common import accumulation_steps, check_saved_adapter, quantization_config

ROOT = Path(__file__).resolve().parents[2]


# ---- the configured batch is the global batch -------------------------------------------------------


def test_accumulation_divides_the_global_batch_by_micro_and_processes() -> None:
    assert accumulation_steps(32, 4, 1) == 8
    assert accumulation_steps(32, 4, 2) == 4
    assert accumulation_steps(32, 4, 8) == 1
    with pytest.raises(ConfigError, match=r"dpo.batch_size = 8 .*\(4\) x 3 training process\(es\) = 12"):
        accumulation_steps(8, 4, 3, key="dpo.batch_size")


# ---- evaluation batches as accelerate shards them ----------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 11])
@pytest.mark.parametrize("micro", [1, 2, 3])
@pytest.mark.parametrize("world", [1, 2, 3])
def test_eval_batches_replay_accelerates_sharding(n: int, micro: int, world: int) -> None:
    """Compare with accelerate's own BatchSamplerShard, rank by rank, step by step."""
    from accelerate.data_loader import BatchSamplerShard
    from torch.utils.data import BatchSampler, SequentialSampler

    base = BatchSampler(SequentialSampler(range(n)), micro, drop_last=False)
    if world == 1:
        expected = [list(b) for b in base]
    else:
        per_rank = [
            list(BatchSamplerShard(base, world, r, split_batches=False, even_batches=True))
            for r in range(world)
        ]
        assert len({len(x) for x in per_rank}) == 1  # even batches
        expected = [b for step in zip(*per_rank, strict=True) for b in step]
    assert distributed.eval_batches(n, micro, world) == expected


# ---- the accelerate command line ---------------------------------------------------------------------


def test_cpu_launch_is_gloo_with_a_share_of_the_cores() -> None:
    t = TrainConfig(num_processes=2)
    argv = launch.accelerate_argv(t, device="cpu", module_args=["m", "r.json"], cpu_count=4)
    assert argv[1:3] == ["-m", "accelerate.commands.launch"]
    # accelerate's --cpu would start one process; torchrun (--multi_gpu) starts two, on the CPU by env.
    assert argv[argv.index("--num_processes") + 1] == "2" and "--multi_gpu" in argv and "--cpu" not in argv
    env = launch.launch_env(t, device="cpu", cpu_count=4)
    assert env == {"ACCELERATE_USE_CPU": "true", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "2"}
    assert launch.launch_env(t, device="cuda", cpu_count=4) == {}
    assert int(argv[argv.index("--main_process_port") + 1]) > 0  # a free port, never a fixed 29500
    assert argv[-3:] == ["-m", "m", "r.json"]


def test_named_accelerate_configs_and_multi_node_pass_through() -> None:
    t = TrainConfig(
        num_processes=16,
        accelerate_config="zero3",
        num_machines=2,
        machine_rank=1,
        main_process_ip="node-a",
        main_process_port=29500,
    )
    argv = launch.accelerate_argv(t, device="cuda", module_args=["m"], cpu_count=64)
    cfg = Path(argv[argv.index("--config_file") + 1])
    assert cfg == ROOT / "configs" / "accelerate" / "zero3.yaml" and cfg.exists()
    pairs = {a: argv[i + 1] for i, a in enumerate(argv) if a.startswith("--") and i + 1 < len(argv)}
    assert pairs["--num_processes"] == "16" and pairs["--num_machines"] == "2"
    assert pairs["--machine_rank"] == "1" and pairs["--main_process_ip"] == "node-a"
    assert pairs["--main_process_port"] == "29500" and "--cpu" not in argv


def test_bad_launch_settings_are_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="train.accelerate_config = 'zero9'"):
        launch.accelerate_argv(
            TrainConfig(accelerate_config="zero9"), device="cpu", module_args=[], cpu_count=2
        )
    with pytest.raises(ConfigError, match="main_process_ip"):
        launch.accelerate_argv(
            TrainConfig(num_processes=4, num_machines=2), device="cuda", module_args=[], cpu_count=2
        )


def test_launch_is_wanted_only_outside_a_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    from character.config import RunConfig

    cfg = RunConfig.model_validate({"train": {"num_processes": 2}})
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    assert launch.wanted(cfg) and not launch.wanted(RunConfig())
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert not launch.wanted(cfg)  # inside the launch: never launch again


# ---- main-only work across real processes (gloo) -----------------------------------------------------

_WORKER = r"""
import os, sys, json
import torch.distributed as dist
dist.init_process_group("gloo")
from character.training import distributed
from character.errors import TrainingAborted
out = {}
out["value"] = distributed.on_main(lambda: {"rank": distributed.rank()})
try:
    def fail():
        raise TrainingAborted("dpo training aborted at step 2: non-finite loss = nan")
    distributed.on_main(fail)
except TrainingAborted as e:
    out["error"] = [type(e).__name__, str(e)]
print(json.dumps(out), flush=True)
distributed.shutdown()
"""


def test_main_only_work_shares_its_result_and_its_error_with_every_rank() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank)}
        env |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", _WORKER], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True
            )
        )
    outs = [json.loads(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    for out in outs:
        assert out["value"] == {"rank": 0}  # the main process's result, on every rank
        assert out["error"] == ["TrainingAborted", "dpo training aborted at step 2: non-finite loss = nan"]


def test_on_main_in_one_process_just_runs() -> None:
    assert distributed.on_main(lambda: 7) == 7
    with pytest.raises(TrainingAborted):
        distributed.on_main(lambda: (_ for _ in ()).throw(TrainingAborted("x")))


# ---- the saved adapter is checked non-empty ----------------------------------------------------------


def _adapter(path: Path, tensors: dict) -> Path:
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path / "adapter_model.safetensors"))
    return path


def test_an_adapter_saved_without_gathering_is_refused(tmp_path: Path) -> None:
    import torch

    key = "base_model.model.layers.0.self_attn.q_proj.lora_{}.weight"
    good = _adapter(
        tmp_path / "good", {key.format("A"): torch.randn(4, 8), key.format("B"): torch.zeros(8, 4)}
    )
    check_saved_adapter(good)  # B is still zero after a warm-up step: fine
    empty = _adapter(tmp_path / "empty", {key.format("A"): torch.empty(0), key.format("B"): torch.empty(0)})
    with pytest.raises(VerificationError, match=r"is empty \(shape \(0,\)\).*trainer.save_model"):
        check_saved_adapter(empty)
    zero = _adapter(
        tmp_path / "zero", {key.format("A"): torch.zeros(4, 8), key.format("B"): torch.zeros(8, 4)}
    )
    with pytest.raises(VerificationError, match="all zeros"):
        check_saved_adapter(zero)
    with pytest.raises(VerificationError, match="no adapter_model.safetensors"):
        check_saved_adapter(tmp_path / "missing")


# ---- resumable checkpoints ---------------------------------------------------------------------------


def _ckpt(trainer_dir: Path, step: int, complete: bool) -> Path:
    d = trainer_dir / f"checkpoint-{step}"
    d.mkdir(parents=True)
    (d / "optimizer.pt").write_bytes(b"x")
    if complete:
        (d / resume.COMPLETE).write_text(f"{step}\n")
    return d


def test_only_complete_checkpoints_are_resumed_and_metrics_are_cut_back(tmp_path: Path) -> None:
    trainer_dir, metrics = tmp_path / "trainer", tmp_path / "metrics.jsonl"
    _ckpt(trainer_dir, 2, True)
    _ckpt(trainer_dir, 10, True)
    torn = _ckpt(trainer_dir, 12, False)  # SIGKILL in the middle of writing it
    assert resume.last_complete_checkpoint(trainer_dir) == trainer_dir / "checkpoint-10"
    rows = [{"step": s, "loss": 1.0 / s} for s in range(1, 14)]
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 14, "lo')  # torn last line
    fp = {"stage": "dpo", "base": "b", "dataset_sha256": "abc", "config": {"dpo.beta": 0.1}}
    resume.write_fingerprint(trainer_dir, fp)
    assert resume.prepare(trainer_dir, metrics, fp, resume=True) == trainer_dir / "checkpoint-10"
    assert [r["step"] for r in resume.read_metrics(metrics)] == list(range(1, 11))
    assert not torn.exists()
    assert resume.prepare(trainer_dir, metrics, fp, resume=False) is None  # a fresh start is the caller's


def test_resuming_with_changed_data_or_settings_is_refused(tmp_path: Path) -> None:
    trainer_dir = tmp_path / "trainer"
    _ckpt(trainer_dir, 4, True)
    fp = {"stage": "dpo", "base": "b", "dataset_sha256": "abc", "config": {"dpo.beta": 0.1}}
    resume.write_fingerprint(trainer_dir, fp)
    changed = {**fp, "dataset_sha256": "def", "config": {"dpo.beta": 0.2}}
    with pytest.raises(ConfigError, match=r"dataset_sha256 .*dpo.beta \(0.1 -> 0.2\).*without --resume"):
        resume.prepare(trainer_dir, tmp_path / "m.jsonl", changed, resume=True)


def test_health_history_continues_after_a_resume(tmp_path: Path) -> None:
    from character.config import HealthConfig
    from character.training.health import HealthCallback

    health = HealthConfig(warmup_logs=0, flat_window=3, flat_rel_change=0.01, max_loss=10.0)
    logged = [{"step": s, "loss": 2.0} for s in (1, 2, 3)] + [{"step": 3, "train_runtime": 1.0}]
    resumed = HealthCallback(health, tmp_path / "a.jsonl", kind="sft")
    resumed.restore(logged)
    fresh = HealthCallback(health, tmp_path / "b.jsonl", kind="sft")
    assert len(resumed.history) == 3 and not fresh.history
    step4 = {"step": 4, "loss": 2.0}
    for cb in (resumed, fresh):
        cb.history.append(step4)
    # The killed run had logged two flat steps; the fourth completes the window only with that history.
    assert "flat" in (resumed.check(step4) or "")
    assert fresh.check(step4) is None


def test_pipeline_resume_resumes_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from character.config_layers import resolve
    from character.runner import Runner
    from tests.unit.test_runner import FakeStages

    monkeypatch.setenv("CHARACTER_ARTIFACTS", str(tmp_path / "artifacts"))
    res = resolve(environ={}, overrides={"pipeline.smoke": "none", "pipeline.report": False})
    seen: list[tuple[str, bool]] = []
    table = FakeStages().table()

    def recording(stage: str):  # type: ignore[no-untyped-def]
        def run(cfg, run_dir, **kw):  # type: ignore[no-untyped-def]
            seen.append((stage, cfg.train.resume))
            return table[stage](cfg, run_dir, **kw)

        return run

    stages = {s: recording(s) for s in table}
    first = Runner(res, stages=stages, until="dpo", progress=False).run()
    assert seen == [("distill", False), ("dpo", False)]
    (first.run_dir / "dpo" / "manifest.json").unlink()  # killed during training
    seen.clear()
    Runner(res, run_dir=first.run_dir, stages=stages, until="dpo", progress=False).run()
    assert seen == [("dpo", True)]  # only the unfinished stage reruns, and it resumes its checkpoints
    assert "resume = true" not in (first.run_dir / "resolved_config.toml").read_text()


# ---- QLoRA and trackers: clear errors ----------------------------------------------------------------


def test_qlora_on_cpu_is_one_clear_error() -> None:
    assert quantization_config(LoraSettings(), "cpu") is None
    with pytest.raises(
        ConfigError, match=r"lora.quantize = '4bit' needs a CUDA GPU .* set lora.quantize = 'none'"
    ):
        quantization_config(LoraSettings(quantize="4bit"), "cpu")


def test_trackers_are_checked_before_training() -> None:
    import importlib.util

    from character.training.tracking import check_trackers

    assert check_trackers(["none"]) == [] and check_trackers(["tensorboard"]) == ["tensorboard"]
    for name in ("wandb", "trackio"):
        if importlib.util.find_spec(name) is None:
            with pytest.raises(ConfigError, match=f"train.report_to includes '{name}'"):
                check_trackers([name])
    with pytest.raises(ValueError, match="'none' cannot be combined"):
        TrainConfig(report_to=["none", "tensorboard"])


# ---- the SLURM launcher --------------------------------------------------------------------------------


def _fake(path: Path, body: str) -> None:
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)


def test_slurm_launcher_runs_one_launch_per_node_with_its_rank(tmp_path: Path) -> None:
    """Fake srun/scontrol/python at the process boundary record the argv each node would run."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.jsonl"
    bin_dir.mkdir()
    rec = f"{sys.executable} -c \"import json,sys,os; print(json.dumps({{'who': sys.argv[1], 'node': os.environ.get('SLURM_NODEID'), 'argv': sys.argv[2:]}}))\" "
    _fake(bin_dir / "scontrol", 'printf "gpu-a\\ngpu-b\\n"\n')
    # srun: record its own argv, then run the per-node command once per node, as SLURM would.
    _fake(
        bin_dir / "srun",
        rec + f'srun "$@" >> {log}\n'
        'cmd="${@: -1}"\nfor n in $(seq 0 $((SLURM_NNODES - 1))); do SLURM_NODEID=$n bash -c "$cmd"; done\n',
    )
    _fake(bin_dir / "python", rec + f'python "$@" >> {log}\n')
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SLURM_JOB_NODELIST": "gpu-[a-b]",
        "SLURM_NNODES": "2",
        "GPUS_PER_NODE": "8",
        "PYTHON": str(bin_dir / "python"),
        "ACCELERATE_CONFIG": "zero3",
    }
    res = subprocess.run(
        ["bash", str(ROOT / "scripts" / "slurm_train.sh"), "dpo", "/shared/runs/r 1", "--max-steps", "5"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    calls = [json.loads(x) for x in log.read_text().splitlines()]
    srun = [c for c in calls if c["who"] == "srun"]
    assert len(srun) == 1 and "--nodes=2" in srun[0]["argv"] and "--ntasks-per-node=1" in srun[0]["argv"]
    nodes = [c for c in calls if c["who"] == "python"]
    assert [c["node"] for c in nodes] == ["0", "1"]
    for rank, call in enumerate(nodes):
        a = call["argv"]
        assert a[:4] == ["-m", "character", "train", "dpo"]
        opts = {x: a[i + 1] for i, x in enumerate(a) if x.startswith("--") and i + 1 < len(a)}
        assert opts["--run"] == "/shared/runs/r 1"  # quoting survives the shell hop
        assert opts["--num-processes"] == "16" and opts["--num-machines"] == "2"
        assert opts["--machine-rank"] == str(rank) and opts["--main-process-ip"] == "gpu-a"
        assert opts["--main-process-port"] == "29500" and opts["--accelerate-config"] == "zero3"
        assert opts["--max-steps"] == "5"


def test_slurm_launcher_outside_slurm_is_one_clear_error() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    res = subprocess.run(
        ["bash", str(ROOT / "scripts" / "slurm_train.sh"), "dpo", "run"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode != 0 and "inside a SLURM allocation" in res.stderr
