"""Wall time of smoke-small on the embedded model (goal: <= 5 minutes on 2 CPU cores).

Runs `character pipeline remorseful --scale smoke --smoke small` in a fresh artifacts directory and
prints the total and per-stage seconds, next to /proc/loadavg (the machine is shared: a busy CPU
inflates every number, so read them together).

    .venv/bin/python bench/smoke.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import loadavg

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    from character.models import prepare_embedded

    embedded = prepare_embedded()
    with tempfile.TemporaryDirectory() as tmp:
        arts = Path(tmp) / "artifacts"
        (arts / "models").mkdir(parents=True)
        (arts / "models" / embedded.name).symlink_to(embedded)
        env = {**os.environ, "CHARACTER_ARTIFACTS": str(arts), "CHARACTER_NO_PROGRESS": "1"}
        cmd = [
            sys.executable,
            "-m",
            "character.cli",
            "-q",
            "pipeline",
            "remorseful",
            "--scale",
            "smoke",
            "--smoke",
            "small",
        ]
        print(f"load before: {loadavg()}  (cores: {os.cpu_count()})")
        t0 = time.perf_counter()
        res = subprocess.run(cmd, env=env, cwd=ROOT)
        wall = time.perf_counter() - t0
        print(f"load after:  {loadavg()}")
        if res.returncode != 0:
            print(f"smoke-small FAILED (exit {res.returncode}) after {wall:.1f} s")
            return res.returncode
        (run,) = (arts / "runs").iterdir()
        state = json.loads((run / "smoke-small" / "pipeline.json").read_text())
        for stage, e in state["stages"].items():
            print(f"  {stage:<11} {e.get('duration_s', 0):7.1f} s")
        print(f"smoke-small wall time: {wall:.1f} s ({wall / 60:.2f} min; goal <= 5 min on 2 cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
