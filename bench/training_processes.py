"""DPO training throughput on CPU: one process vs two (`accelerate launch`, gloo), same global batch.

Runs `character train dpo` on the embedded model over a hand-written pairs file, once with one process
(micro 2 x 2 accumulation steps) and once with `--num-processes 2` (micro 2 each, no accumulation), and
prints tokens/s of the training loop (tokens the trainer counted / its train_runtime) and the wall
time of the whole command (model loads, verification and merge included), with /proc/loadavg. Figures
only, no asserts: on a shared 2-core machine two processes compete with everything else.

    flock /tmp/heavy.lock .venv/bin/python bench/training_processes.py [--steps 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import loadavg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def one_run(arts: Path, pairs: Path, cfg: Path, procs: int, steps: int) -> dict[str, float]:
    env = {
        **os.environ,
        "CHARACTER_ARTIFACTS": str(arts),
        "CHARACTER_NO_PROGRESS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    cmd = [sys.executable, "-m", "character", "-q", "train", "dpo", "--persona", "remorseful"]
    cmd += ["--dataset", str(pairs), "--config", str(cfg), "--max-steps", str(steps)]
    cmd += ["--suffix", f"bench{procs}", "--num-processes", str(procs), "--save-steps", str(10 * steps)]
    before = loadavg()
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{procs} process(es) failed (exit {res.returncode}): {res.stderr[-2000:]}")
    (run,) = [d for d in (arts / "runs").iterdir() if d.name.startswith(f"remorseful_bench{procs}_")]
    rows = [json.loads(x) for x in (run / "dpo" / "metrics.jsonl").read_text().splitlines()]
    tokens = max(float(r["num_tokens"]) for r in rows if "loss" in r and "num_tokens" in r)
    runtime = next(float(r["train_runtime"]) for r in rows if "train_runtime" in r)
    return {
        "tokens": tokens,
        "train_s": runtime,
        "wall_s": wall,
        "load_before": before,
        "load_after": loadavg(),
    }  # type: ignore[dict-item]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8, help="optimizer steps per run (global batch 4)")
    args = ap.parse_args()
    from character.models import prepare_embedded
    from tests.integration.dpo_tiny import QUESTIONS, write_config, write_pairs

    embedded = prepare_embedded()
    print(
        f"cores: {os.cpu_count()}; {len(QUESTIONS)} pairs, global batch 4, {args.steps} steps, embedded model"
    )
    with tempfile.TemporaryDirectory() as tmp:
        arts = Path(tmp) / "artifacts"
        (arts / "models").mkdir(parents=True)
        (arts / "models" / embedded.name).symlink_to(embedded)
        pairs = write_pairs(Path(tmp) / "pairs.jsonl")
        cfg = write_config(Path(tmp) / "cfg.toml")
        for procs in (1, 2):
            r = one_run(arts, pairs, cfg, procs, args.steps)
            print(
                f"{procs} process(es): {r['tokens'] / r['train_s']:8.1f} tokens/s in training "
                f"({r['tokens']:.0f} tokens / {r['train_s']:.1f} s), command wall {r['wall_s']:.1f} s; "
                f"loadavg {r['load_before']} -> {r['load_after']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
