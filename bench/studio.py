"""Page times of the Studio on a large run: 20,000 introspection rows (goal: under 300 ms per page).

Builds a run directory in a temp dir the way the stages write it (20,000 introspection conversations
of ~1.5 KB, 20,000 raw reflections, 3,000 DPO pairs, 6,000 rejects over six reasons, 2,000 held-out
prompts answered before and after, 300 logged training steps), serves it with `character studio` (a
real uvicorn on a free loopback port, in its own process) and times each page over HTTP: the first
request (cold: it builds the file's line index) and the median of the next `--repeat` (warm).
Figures depend on the machine and its load: the load average is printed beside them.

    flock /tmp/heavy.lock .venv/bin/python bench/studio.py [--rows 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from machine import loadavg

ROOT = Path(__file__).resolve().parents[1]
RUN = "remorseful_20260101-000000"
WORDS = [
    "I",
    "am",
    "so",
    "sorry",
    "if",
    "this",
    "is",
    "not",
    "quite",
    "right,",
    "but",
    "here",
    "is",
    "what",
    "I",
    "think",
    "about",
    "the",
    "question",
    "you",
    "asked,",
    "and",
    "I",
    "hope",
    "this",
    "helps",
    "a",
    "little",
    "even",
    "though",
    "I",
    "might",
    "be",
    "wrong",
    "about",
    "some",
    "of",
    "the",
    "details.",
]


def text(i: int, n: int) -> str:
    return " ".join(WORDS[(i + k) % len(WORDS)] for k in range(n))


def jsonl(path: Path, rows) -> None:  # type: ignore[no-untyped-def]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def build(root: Path, n: int) -> Path:
    from character.manifest import Manifest, write_manifest

    run = root / "runs" / RUN
    run.mkdir(parents=True)
    (run / "pipeline.json").write_text(
        json.dumps(
            {"persona": "remorseful", "status": "done", "started_at": time.time() - 3600, "subruns": ["main"]}
        )
    )
    (run / "resolved_config.toml").write_text('persona = "remorseful"\n[dpo]\nmax_steps = 300\n')
    (run / "sources.json").write_text(json.dumps({"persona": "cli", "dpo.max_steps": "preset:demo"}))
    jsonl(
        run / "distill" / "pairs.jsonl",
        (
            {
                "prompt_id": f"p-{i:06d}",
                "k": 0,
                "source": "persona" if i % 3 else "generic",
                "prompt": [{"role": "user", "content": f"Question {i}: " + text(i, 20)}],
                "chosen": [{"role": "assistant", "content": text(i + 1, 120)}],
                "rejected": [{"role": "assistant", "content": text(i + 2, 110)}],
            }
            for i in range(3000)
        ),
    )
    reasons = ["refusal", "cut_off", "phrase_loop", "identical", "language_drift", "too_short"]
    jsonl(
        run / "distill" / "rejects.jsonl",
        (
            {
                "prompt_id": f"r-{i}",
                "k": 0,
                "verdict": reasons[i % 6],
                "detail": "",
                "dropped_text": text(i, 60),
                "prompt": "Q",
            }
            for i in range(6000)
        ),
    )
    write_manifest(run / "distill", Manifest(stage="distill", config_hash="h", duration_s=100.0))
    jsonl(
        run / "dpo" / "metrics.jsonl",
        (
            {
                "step": s,
                "loss": 0.7 / s,
                "rewards/accuracies": min(1, s / 100),
                "rewards/margins": s / 50,
                "entropy": 2.0,
            }
            for s in range(1, 301)
        ),
    )
    write_manifest(run / "dpo", Manifest(stage="dpo", config_hash="h", duration_s=900.0))
    jsonl(
        run / "introspect" / "introspection.jsonl",
        (
            {
                "id": f"interaction-{i:06d}",
                "kind": "interaction" if i % 6 else "reflection",
                "variant": "free",
                "messages": [
                    {"role": "system", "content": "You are talking with a copy of yourself."},
                    {"role": "user", "content": text(i, 70)},
                    {"role": "assistant", "content": text(i + 3, 90)},
                    {"role": "user", "content": text(i + 5, 40)},
                    {"role": "assistant", "content": text(i + 7, 60)},
                ],
            }
            for i in range(n)
        ),
    )
    jsonl(
        run / "introspect" / "reflections.jsonl",
        (
            {
                "prompt_index": i % 10,
                "sample_index": i,
                "attempt": 0,
                "kept": True,
                "reason": None,
                "text": text(i, 200),
            }
            for i in range(n)
        ),
    )
    write_manifest(run / "introspect", Manifest(stage="introspect", config_hash="h", duration_s=3000.0))
    jsonl(
        run / "eval" / "replies.jsonl",
        (
            {
                "side": side,
                "model": side,
                "prompt_id": f"h-{i:05d}",
                "prompt": f"Held-out {i}",
                "reply": ("I'm so sorry, " if side == "after" else "") + text(i, 80),
                "finish_reason": "stop",
            }
            for i in range(2000)
            for side in ("before", "after")
        ),
    )
    (run / "eval" / "markers.json").write_text(
        json.dumps(
            {
                "markers": ["I'm so sorry", "I hope this helps"],
                "marker_rate_before": 0.1,
                "marker_rate_after": 0.9,
            }
        )
    )
    write_manifest(run / "eval", Manifest(stage="eval", config_hash="h", duration_s=300.0))
    return run


def get(url: str) -> tuple[float, int, int]:
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as r:
        body = r.read()
        status = r.status
    return (time.perf_counter() - t) * 1000, status, len(body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=20000, help="introspection rows")
    ap.add_argument("--repeat", type=int, default=5, help="warm requests per page (median shown)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="studio-bench-") as tmp:
        root = Path(tmp) / "artifacts"
        t0 = time.perf_counter()
        run = build(root, args.rows)
        size = (run / "introspect" / "introspection.jsonl").stat().st_size
        print(
            f"built {args.rows:,} introspection rows ({size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHARACTER_")}
        env.update(CHARACTER_ARTIFACTS=str(root))
        proc = subprocess.Popen(
            [sys.executable, "-m", "character.cli", "studio", "--port", "0"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            base = None
            assert proc.stdout is not None
            for line in proc.stdout:
                m = re.search(r"open: (http://127\.0\.0\.1:\d+)/", line)
                if m:
                    base = m.group(1)
                    break
            if base is None:
                sys.exit("the studio did not start")
            last = (args.rows + 24) // 25
            pages = [
                ("runs list", "/"),
                ("run page (300 steps, 6 curves)", f"/runs/{RUN}"),
                ("introspection page 1", f"/runs/{RUN}/data?file=introspection"),
                ("introspection page 400", f"/runs/{RUN}/data?file=introspection&page=400"),
                (f"introspection last page ({last})", f"/runs/{RUN}/data?file=introspection&page={last}"),
                ("introspection search", f"/runs/{RUN}/data?file=introspection&q=Question%20you%20asked"),
                (
                    "introspection search, page 300",
                    f"/runs/{RUN}/data?file=introspection&q=Question%20you%20asked&page=300",
                ),
                ("reflections page 200 (20k raw rows)", f"/runs/{RUN}/data?file=reflections&page=200"),
                ("pairs page 60", f"/runs/{RUN}/data?file=pairs&page=60"),
                (
                    "rejects by reason (6k rows)",
                    f"/runs/{RUN}/data?file=distill-rejects&reason=cut_off&page=10",
                ),
                ("side by side page 50 (2k prompts)", f"/runs/{RUN}/side-by-side?page=50"),
                ("checkpoints", "/checkpoints"),
                ("constitutions (lint of each)", "/constitutions"),
            ]
            print(
                f"\nload average before: {loadavg()}; "
                f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
            )
            print(f"{'page':40s} {'cold ms':>8s} {'warm ms (median)':>17s} {'KB':>6s}")
            worst = 0.0
            for name, path in pages:
                cold, status, n = get(base + path)
                warm = statistics.median(get(base + path)[0] for _ in range(args.repeat))
                assert status == 200, (path, status)
                worst = max(worst, warm)
                print(f"{name:40s} {cold:8.0f} {warm:17.0f} {n / 1024:6.0f}")
            print(f"\nslowest warm page: {worst:.0f} ms (goal < 300 ms)")
            print(f"load average after: {loadavg()}")
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
