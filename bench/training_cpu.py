"""DPO and SFT step time on the CPU: fp32 vs bf16 autocast, and TRL's precomputed reference log-probs.

Builds the stages' own trainers (`training.dpo.build_trainer`, `training.sft.build_trainer`) on the
embedded model over a DPO pairs file (and an introspection file for SFT), trains `--steps` optimizer
steps per variant, and prints seconds per step, the logged losses and reward margins, and the held-out
loss the trainer reports, next to /proc/loadavg. The variants see the same data in the same order
(seeded), so their losses show whether a faster setting changes results beyond noise. Figures only,
no asserts (the machine is shared: read the load beside every number).

    flock /tmp/heavy.lock .venv/bin/python bench/training_cpu.py --pairs RUN/distill/pairs.jsonl \
        [--introspection RUN/introspect/introspection.jsonl] [--steps 4] [--variants fp32,bf16,bf16+pre]

Variants: `fp32` (the CPU default), `bf16` (train.precision = "bf16": autocast, fp32 master weights),
`+pre` (dpo.precompute_ref_log_probs: the reference scores each pair once instead of every step).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from machine import loadavg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CHARACTER_NO_PROGRESS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _cfg(variant: str, steps: int, preset: str) -> object:
    from character.config_layers import resolve

    over = {
        "dpo.max_steps": steps,
        "sft.max_steps": steps,
        "train.save_steps": 10 * steps,
        "train.precision": "bf16" if variant.startswith("bf16") else "fp32",
        "dpo.precompute_ref_log_probs": variant.endswith("+pre"),
    }
    return resolve(presets=[preset], overrides=over, environ={}).config


def dpo_variant(variant: str, pairs: Path, steps: int, preset: str, out: Path) -> dict[str, object]:
    import torch

    from character.models import load_tokenizer
    from character.records import read_jsonl
    from character.training.dpo import build_trainer, trl_pair
    from character.training.split import split_pairs

    cfg = _cfg(variant, steps, preset)
    rows = [trl_pair(r) | {"k": r.get("k"), "prompt_id": r.get("prompt_id")} for r in read_jsonl(pairs)]
    train, held = split_pairs(rows, cfg.dpo.eval_fraction, cfg.seed)  # type: ignore[attr-defined]
    tok = load_tokenizer("embedded")
    torch.manual_seed(cfg.seed)  # type: ignore[attr-defined]
    load = loadavg()
    t0 = time.perf_counter()
    trainer, health = build_trainer(
        cfg,
        "embedded",
        train,
        held,
        output_dir=out / "trainer",
        metrics_path=out / "metrics.jsonl",
        tokenizer=tok,
    )
    t1 = time.perf_counter()
    trainer.train()
    t2 = time.perf_counter()
    held_loss = trainer.evaluate().get("eval_loss")
    logged = [h for h in health.history if "loss" in h]
    return {
        "stage": "dpo",
        "variant": variant,
        "setup_s": round(t1 - t0, 1),  # model load, tokenising, and the reference pass with +pre
        "s_per_step": round((t2 - t1) / steps, 2),
        "losses": [round(h["loss"], 4) for h in logged],
        "margins": [round(h.get("rewards/margins", 0.0), 3) for h in logged],
        "heldout_loss": round(float(held_loss), 4) if held_loss is not None else None,
        "threads": torch.get_num_threads(),
        "load_before": load,
        "load_after": loadavg(),
    }


def sft_variant(variant: str, rows_file: Path, steps: int, preset: str, out: Path) -> dict[str, object]:
    import torch

    from character.models import load_tokenizer
    from character.training.sft import build_examples, build_trainer, load_rows, split_examples

    cfg = _cfg(variant, steps, preset)
    tok = load_tokenizer("embedded")
    examples, _ = build_examples(load_rows(rows_file), tok, cfg.sft.max_length)  # type: ignore[attr-defined]
    train, held = split_examples(examples, cfg.sft.eval_fraction, cfg.seed)  # type: ignore[attr-defined]
    torch.manual_seed(cfg.seed)  # type: ignore[attr-defined]
    load = loadavg()
    t0 = time.perf_counter()
    trainer = build_trainer(cfg, "embedded", tok, train, held, output_dir=out / "trainer", callbacks=[])
    t1 = time.perf_counter()
    trainer.train()
    t2 = time.perf_counter()
    logged = [h for h in trainer.state.log_history if "loss" in h]
    held_loss = trainer.evaluate().get("eval_loss") if held else None
    return {
        "stage": "sft",
        "variant": variant,
        "setup_s": round(t1 - t0, 1),
        "s_per_step": round((t2 - t1) / steps, 2),
        "losses": [round(h["loss"], 4) for h in logged],
        "heldout_loss": round(float(held_loss), 4) if held_loss is not None else None,
        "threads": torch.get_num_threads(),
        "load_before": load,
        "load_after": loadavg(),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=Path, required=True, help="a distill pairs.jsonl")
    ap.add_argument("--introspection", type=Path, help="an introspection.jsonl (adds the SFT rows)")
    ap.add_argument("--steps", type=int, default=4, help="optimizer steps per variant (default 4)")
    ap.add_argument("--variants", default="fp32,bf16,fp32+pre,bf16+pre")
    ap.add_argument("--preset", default="demo", help="config preset the trainers use (default demo)")
    args = ap.parse_args()
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    print(f"cores {os.cpu_count()}, torch threads {torch.get_num_threads()}, load {loadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for v in args.variants.split(","):
            print(
                json.dumps(dpo_variant(v, args.pairs, args.steps, args.preset, Path(tmp) / f"dpo-{v}")),
                flush=True,
            )
        if args.introspection:
            for v in [v for v in args.variants.split(",") if not v.endswith("+pre")]:
                res = sft_variant(v, args.introspection, args.steps, args.preset, Path(tmp) / f"sft-{v}")
                print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
