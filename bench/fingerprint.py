"""How long the registry's weight hash takes: `character.fingerprint.weights_sha256` on the embedded
model (540 MB of fp32 safetensors), as registration, promotion and `chat --persona` pay it.

Run: flock /tmp/heavy.lock .venv/bin/python bench/fingerprint.py [MODEL_DIR] [--repeat N]
Prints MB, seconds and MB/s per repeat (the first read may come from disk, later ones from the page
cache), with /proc/loadavg.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from character.fingerprint import weight_files, weights_sha256
from character.models import embedded_dir


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default=None, help="model or adapter directory (default: embedded)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    root = Path(args.model) if args.model else embedded_dir()
    mb = sum(f.stat().st_size for f in weight_files(root)) / 1e6
    print(
        f"{root}: {mb:.1f} MB in {len(weight_files(root))} files; loadavg {Path('/proc/loadavg').read_text().strip()}"
    )
    for i in range(args.repeat):
        t = time.perf_counter()
        sha = weights_sha256(root)
        dt = time.perf_counter() - t
        print(f"run {i + 1}: {dt:.3f} s, {mb / dt:.0f} MB/s, sha256 {sha[:12]}")
    print(f"loadavg after: {Path('/proc/loadavg').read_text().strip()}")


if __name__ == "__main__":
    main()
