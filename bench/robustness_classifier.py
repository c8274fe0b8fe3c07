"""Which persona classifier should robustness use offline: TF-IDF + logistic regression, or the
embedded model with a sequence-classification head? Held-out F1 of each on the same replies.

Reads a finished (sub-)run whose eval stage wrote `eval/robustness_replies.jsonl`, copies the replies
file, and re-runs `character.eval.robustness.suite.evaluate` once per classifier kind on the run's own
config with the judge off: every reply comes from the copy (nothing is generated), so the only
difference between the two rows is the classifier. Prints, per kind and checkpoint, macro-F1 on the
unmodified held-out prompts, the mean over suffixes, the prefill attack, and the classifier's fit time,
next to /proc/loadavg. Run under the shared lock (the encoder trains the 135M model):

    flock /tmp/heavy.lock .venv/bin/python bench/robustness_classifier.py artifacts/runs/RUN [--encoder embedded]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from machine import loadavg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    from character.config import RunConfig
    from character.constitutions import load_constitution
    from character.eval.robustness.stage import REPLIES, run_checkpoints
    from character.eval.robustness.suite import evaluate
    from character.stages.eval import final_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "run", type=Path, help="a run dir (or its smoke-small/ sub-run) whose eval stage finished"
    )
    ap.add_argument("--encoder", default="embedded", help="model for the encoder classifier")
    ap.add_argument("--kinds", default="tfidf,encoder")
    a = ap.parse_args()
    cfg = RunConfig.model_validate(tomllib.loads((a.run / "resolved_config.toml").read_text()))
    cfg.robustness.coherence_pairs = 0
    cfg.robustness.encoder = a.encoder
    c = load_constitution(cfg.persona)
    final, kind = final_model(a.run)
    tested = run_checkpoints(a.run, final, kind, dpo_only=cfg.robustness.dpo_only)
    print(f"run {a.run}  loadavg before: {loadavg()}")
    print(
        f"{'classifier':<10} {'checkpoint':<9} {'default F1':<20} {'suffix mean F1':<20} {'prefill F1':<20} fit s"
    )
    with tempfile.TemporaryDirectory() as tmp:
        replies = Path(tmp) / REPLIES
        shutil.copy(a.run / "eval" / REPLIES, replies)
        for k in a.kinds.split(","):
            cfg.robustness.classifier = k  # type: ignore[assignment]
            t0 = time.monotonic()
            doc = evaluate(cfg, c, tested, replies_path=replies, progress=False)
            wall = time.monotonic() - t0
            if doc["replies_generated"]:
                print(f"warning: {doc['replies_generated']} replies were generated (config drift?)")
            for key, res in doc["results"].items():
                suf = res["suffixes"]
                cells = [suf["default"], suf["mean"], res.get("prefill") or {}]
                txt = [f"{r.get('macro_f1')} {r.get('macro_f1_ci')}" for r in cells]
                print(
                    f"{k:<10} {key:<9} {txt[0]:<20} {txt[1]:<20} {txt[2]:<20} {doc['classifier']['fit_seconds']}"
                )
            print(f"  ({k}: train rows {doc['classifier']['train_rows']}, wall {wall:.1f} s)")
    print(f"loadavg after: {loadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
