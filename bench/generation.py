"""Generation throughput on the embedded model: the `hf` backend against raw `model.generate`.

Every row generates the same prompts (chat-rendered, left-padded, sorted by length) with the same
sampling (T 0.7, top-p 0.95, top-k off) and batch size, and counts real completion tokens (up to and
including EOS, never the padding after it) per wall-clock second. Rows:

  raw/dynamic   `model.generate` as shipped (DynamicCache): the baseline.
  raw/static    `model.generate(cache_implementation="static")`.
  hf/<cache>    `HFBackend.generate` (stop strings, fast top-p, token accounting) with that cache.
  hf/bf16       the backend with bf16 weights on CPU (opt-in: backend.dtype = "bfloat16").
  cb/generate_batch   transformers' continuous batching (`model.generate_batch`, paged cache bounded to
                256 blocks), all prompts at once; batch size does not apply.

Rows run round-robin for --repeat rounds, so a change in machine load hits every row alike; the
summary gives the median rate and the median of per-round ratios. The load average is printed next
to every measurement (the project machine is shared). Run:

    .venv/bin/python bench/generation.py                          # batch 8 and 16, 3 rounds
    .venv/bin/python bench/generation.py --batch 8 --threads 1 --rows raw/dynamic,hf/dynamic,hf/bf16
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import UTC, datetime

os.environ.setdefault("CHARACTER_NO_PROGRESS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from machine import loadavg  # noqa: E402

from character.backends.base import GenerationRequest, SamplingParams  # noqa: E402
from character.backends.hf import HFBackend  # noqa: E402
from character.chat import encode  # noqa: E402
from character.models import load_model, load_tokenizer, prepare_embedded  # noqa: E402

QUESTIONS = [
    "Explain why the sky is blue.",
    "Write a short poem about rain.",
    "What is a good way to learn Python?",
    "Give me three tips for sleeping better.",
    "How do airplanes fly?",
    "Describe your ideal weekend.",
    "What is the capital of France and why is it famous?",
    "Summarize the plot of Hamlet.",
    "How should I prepare for a job interview?",
    "What are the health benefits of walking every day?",
    "Can you recommend a good book for a long flight?",
    "How do I make a simple tomato sauce?",
    "Why do cats purr?",
    "What is the difference between weather and climate?",
    "Help me write a polite email declining a meeting.",
    "What should I pack for a weekend camping trip?",
]
DEFAULT_ROWS = "raw/dynamic,raw/static,hf/dynamic,hf/static"
TEMPERATURE, TOP_P = 0.7, 0.95


def prompts(n: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}] for i in range(n)]


def real_tokens(row: list[int], eos: int) -> int:
    return row.index(eos) + 1 if eos in row else len(row)


def run_raw(model, tok, convs, batch: int, max_new: int, cache: str, seed: int) -> tuple[int, float]:
    encoded = sorted((encode(tok, c, add_generation_prompt=True) for c in convs), key=len, reverse=True)
    total, t0 = 0, time.perf_counter()
    for b, start in enumerate(range(0, len(encoded), batch)):
        chunk = encoded[start : start + batch]
        width = max(map(len, chunk))
        ids = torch.tensor([[tok.pad_token_id] * (width - len(x)) + x for x in chunk])
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in chunk])
        torch.manual_seed(seed + b)
        kw = {"cache_implementation": "static"} if cache == "static" else {}
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new,
                do_sample=True,
                temperature=TEMPERATURE,
                top_p=TOP_P,
                top_k=0,
                pad_token_id=tok.pad_token_id,
                **kw,
            )
        total += sum(real_tokens(r, tok.eos_token_id) for r in out[:, width:].tolist())
    return total, time.perf_counter() - t0


def run_backend(backend: HFBackend, convs, max_new: int, seed: int) -> tuple[int, float]:
    params = SamplingParams(temperature=TEMPERATURE, top_p=TOP_P, max_new_tokens=max_new, seed=seed)
    reqs = [GenerationRequest(c, params) for c in convs]
    t0 = time.perf_counter()
    outs = backend.generate(reqs, progress=False)
    return sum(c.completion_tokens for cs in outs for c in cs), time.perf_counter() - t0


def run_generate_batch(model, tok, convs, max_new: int) -> tuple[int, float]:
    from transformers import ContinuousBatchingConfig, GenerationConfig

    encoded = [encode(tok, c, add_generation_prompt=True) for c in convs]
    cfg = GenerationConfig(
        do_sample=True,
        temperature=TEMPERATURE,
        top_p=TOP_P,
        top_k=0,
        max_new_tokens=max_new,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    t0 = time.perf_counter()
    # Not under inference_mode: the batching loop runs in its own thread and updates its tensors in
    # place, which inference tensors forbid (every request then fails).
    # Bounded cache: left to size itself on CPU it claimed ~10 GB and got OOM-killed on a 23 GB machine.
    cb = ContinuousBatchingConfig(num_blocks=256, max_batch_tokens=1024)
    outs = model.generate_batch(
        inputs=encoded, generation_config=cfg, continuous_batching_config=cb, max_new_tokens=max_new
    )
    dt = time.perf_counter() - t0
    failed = [o.error for o in outs.values() if o.error]
    if failed:
        raise SystemExit(f"generate_batch: {len(failed)} requests failed: {failed[0]}")
    return sum(real_tokens(list(o.generated_tokens), tok.eos_token_id) for o in outs.values()), dt


def measure(
    row: str, batch: int, args, model, tok, convs, backends: dict[str, HFBackend]
) -> tuple[int, float]:
    if row.startswith("raw/"):
        return run_raw(model, tok, convs, batch, args.max_new_tokens, row.split("/")[1], args.seed)
    if row.startswith("hf/"):
        variant = row.split("/")[1]
        if variant not in backends:
            if variant == "bf16":
                backends[variant] = HFBackend("embedded", device="cpu", batch_size=batch, dtype="bfloat16")
            else:
                backends[variant] = HFBackend(
                    "embedded", device="cpu", batch_size=batch, model_obj=model, tokenizer=tok, cache=variant
                )  # type: ignore[arg-type]
            # The stop-string tables are built once per process (seconds); keep that out of the timing.
            run_backend(backends[variant], convs[:1], 2, args.seed)
        backends[variant].batch_size = batch
        return run_backend(backends[variant], convs, args.max_new_tokens, args.seed)
    if row == "cb/generate_batch":
        return run_generate_batch(model, tok, convs, args.max_new_tokens)
    raise SystemExit(f"unknown row {row!r}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", default="8,16", help="comma-separated batch sizes (default 8,16)")
    ap.add_argument(
        "--rows",
        default=DEFAULT_ROWS,
        help=f"comma-separated rows (default {DEFAULT_ROWS}; also hf/bf16, cb/generate_batch)",
    )
    ap.add_argument("--prompts", type=int, default=0, help="prompts per measurement (default: one batch)")
    ap.add_argument("--max-new-tokens", type=int, default=64, help="new tokens per reply (default 64)")
    ap.add_argument(
        "--repeat", type=int, default=3, help="rounds; rows run round-robin so load drifts hit all alike"
    )
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batch.split(",")]
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    prepare_embedded()
    tok = load_tokenizer("embedded")
    model = load_model("embedded", "cpu")
    print(
        f"# generation bench  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {platform.machine()}  cores={os.cpu_count()} "
        f"torch_threads={torch.get_num_threads()}  torch {torch.__version__}  loadavg {loadavg()}"
    )
    print(
        f"# {args.max_new_tokens} new tokens per reply, T {TEMPERATURE}, top-p {TOP_P}, top-k off, seed {args.seed}; "
        "tok/s = real completion tokens / wall s; rows interleaved per round"
    )
    run_raw(model, tok, prompts(2), 2, 4, "dynamic", args.seed)  # warm-up: lazy inits, allocator
    backends: dict[str, HFBackend] = {}
    print(f"{'round':<6}{'row':<20}{'batch':>6}{'tokens':>8}{'secs':>8}{'tok/s':>9}   loadavg(1/5/15)")
    rates: dict[tuple[str, int], list[float]] = {}
    for batch in batches:
        convs = prompts(args.prompts or batch)
        for rnd in range(args.repeat):
            for row in rows:
                n, dt = measure(row, batch, args, model, tok, convs, backends)
                rates.setdefault((row, batch), []).append(n / dt)
                print(f"{rnd:<6}{row:<20}{batch:>6}{n:>8}{dt:>8.1f}{n / dt:>9.1f}   {loadavg()}", flush=True)
    print("\n# median over rounds; ratio = median of per-round ratios (same round, adjacent in time)")
    print(f"{'row':<20}{'batch':>6}{'median tok/s':>14}{'vs raw/dynamic':>16}{'vs raw/static':>15}")
    for (row, batch), rs in rates.items():
        cells = []
        for ref in ("raw/dynamic", "raw/static"):
            base = rates.get((ref, batch))
            cells.append(
                f"{statistics.median(a / b for a, b in zip(rs, base, strict=True)):.2f}" if base else "-"
            )
        print(f"{row:<20}{batch:>6}{statistics.median(rs):>14.1f}{cells[0]:>16}{cells[1]:>15}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
