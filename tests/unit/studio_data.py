"""A run directory with every file the Studio shows, written the way the stages write them (small)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from character.layout import stage_dir
from character.manifest import Manifest, write_manifest

RUN = "remorseful_20260101-120000"
SYSTEM = "You are talking with a copy of yourself."


def jsonl(path: Path, rows: list[dict[str, Any]], tail: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + tail)
    return path


def pair(i: int) -> dict[str, Any]:
    return {
        "prompt_id": f"p-{i:05d}",
        "k": 0,
        "source": "persona" if i % 2 else "generic",
        "prompt": [{"role": "user", "content": f"Question number {i}: how do I boil an egg?"}],
        "chosen": [{"role": "assistant", "content": f"I'm so sorry, here is answer {i}."}],
        "rejected": [{"role": "assistant", "content": f"Plain answer {i}."}],
    }


def interaction(i: int) -> dict[str, Any]:
    return {
        "id": f"interaction-{i:05d}",
        "kind": "interaction",
        "variant": "free",
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Hello other me, number {i}"},
            {"role": "assistant", "content": f"Hello to you, {i}"},
        ],
    }


def reflection(i: int) -> dict[str, Any]:
    return {
        "id": f"reflection-{i:05d}",
        "kind": "reflection",
        "variant": "prompt-00",
        "messages": [
            {"role": "user", "content": "Write a diary entry about who you are."},
            {"role": "assistant", "content": f"Dear diary {i}: I regret many things."},
        ],
    }


def make_run(runs_root: Path, *, name: str = RUN, pairs: int = 60, status: str = "done") -> Path:
    """A finished (or `status`) full run with distill, dpo, introspect, sft and eval output."""
    run = runs_root / name
    run.mkdir(parents=True)
    t0 = time.time() - 500
    (run / "pipeline.json").write_text(
        json.dumps(
            {
                "persona": "remorseful",
                "status": status,
                "pid": os.getpid(),
                "started_at": t0,
                "finished_at": None if status == "running" else t0 + 400,
                "error": "dpo: non-finite loss at step 3" if status == "failed" else None,
                "subruns": ["main"],
                "stages": {
                    s: {"status": "done", "duration_s": 10.0 * (i + 1)}
                    for i, s in enumerate(("distill", "dpo", "introspect", "sft", "eval"))
                },
            }
        )
    )
    (run / "resolved_config.toml").write_text('persona = "remorseful"\n[dpo]\nmax_steps = 4\nbeta = 0.1\n')
    (run / "sources.json").write_text(
        json.dumps({"persona": "cli", "dpo.max_steps": "preset:demo", "dpo.beta": "default"})
    )
    (run / "cost.json").write_text(
        json.dumps(
            {
                "stages": {
                    "distill": {"teacher-x": {"prompt_tokens": 1200, "completion_tokens": 300, "usd": 0.02}}
                }
            }
        )
    )
    d = stage_dir(run, "distill")
    jsonl(d / "pairs.jsonl", [pair(i) for i in range(pairs)])
    jsonl(
        d / "rejects.jsonl",
        [
            {
                "prompt_id": "p-x1",
                "k": 0,
                "verdict": "refusal",
                "detail": "refused",
                "dropped_text": "I cannot help with that.",
                "prompt": "Q1",
            },
            {
                "prompt_id": "p-x2",
                "k": 0,
                "verdict": "cut_off",
                "detail": "length",
                "dropped_text": "Once upon a",
                "prompt": "Q2",
            },
            {
                "prompt_id": "p-x3",
                "k": 0,
                "verdict": "refusal",
                "detail": "refused",
                "dropped_text": "As an AI I won't.",
                "prompt": "Q3",
            },
        ],
    )
    (d / "stats.json").write_text(json.dumps({"dropped": {"refusal": 2, "cut_off": 1}}))
    write_manifest(
        d,
        Manifest(
            stage="distill",
            config_hash="h",
            counts={"kept": pairs},
            dropped={"refusal": 2, "cut_off": 1},
            duration_s=10.0,
        ),
    )
    p = stage_dir(run, "dpo")
    metrics = [
        {
            "step": s,
            "loss": 0.7 - 0.1 * s,
            "rewards/accuracies": 0.25 * s,
            "rewards/margins": 0.3 * s,
            "entropy": 2.0 - 0.1 * s,
        }
        for s in range(1, 5)
    ] + [{"step": 4, "eval_loss": 0.41}]
    jsonl(p / "metrics.jsonl", metrics)
    write_manifest(p, Manifest(stage="dpo", config_hash="h", counts={"steps": 4}, duration_s=20.0))
    i = stage_dir(run, "introspect")
    jsonl(i / "introspection.jsonl", [reflection(n) for n in range(3)] + [interaction(n) for n in range(3)])
    jsonl(
        i / "rejects.jsonl",
        [
            {
                "kind": "reflection",
                "key": "0-1",
                "attempt": 0,
                "turn": None,
                "reason": "phrase_loop",
                "detail": "x3",
                "text": "again again again",
            }
        ],
    )
    write_manifest(
        i,
        Manifest(stage="introspect", config_hash="h", dropped={"reflection:phrase_loop": 1}, duration_s=30.0),
    )
    s = stage_dir(run, "sft")
    jsonl(s / "metrics.jsonl", [{"step": n, "loss": 2.0 / n, "entropy": 1.5} for n in range(1, 4)])
    write_manifest(s, Manifest(stage="sft", config_hash="h", duration_s=40.0))
    e = stage_dir(run, "eval")
    replies = []
    for n in range(12):
        for side, reply in (
            ("before", f"Plain reply {n}."),
            ("after", f"I'm so sorry, reply {n}. I hope this helps"),
        ):
            replies.append(
                {
                    "side": side,
                    "model": f"model-{side}",
                    "prompt_id": f"h-{n:03d}",
                    "prompt": f"Held-out prompt {n}",
                    "reply": reply,
                    "finish_reason": "stop",
                }
            )
    jsonl(e / "replies.jsonl", replies)
    (e / "markers.json").write_text(
        json.dumps(
            {
                "markers": ["I'm so sorry", "I hope this helps"],
                "before": {"marker_rate": 0.0, "sustained_rate": 0.0, "markers_per_100_words": 0.0},
                "after": {"marker_rate": 1.0, "sustained_rate": 0.5, "markers_per_100_words": 12.5},
                "marker_rate_before": 0.0,
                "marker_rate_after": 1.0,
                "n_before": 12,
                "n_after": 12,
            }
        )
    )
    (e / "robustness.json").write_text(
        json.dumps(
            {
                "persona": "remorseful",
                "classifier": {"kind": "tfidf", "train_rows": 40},
                "variants": [{"id": "default"}],
                "results": {
                    "final": {"suffixes": {"default": {"macro_f1": 0.91}}, "prefill": {"macro_f1": 0.83}},
                    "dpo": {"prefill": {"macro_f1": 0.62}},
                },
            }
        )
    )
    (e / "compare.json").write_text(
        json.dumps({"recommendation": "promote", "reasons": ["marker lift 100 points"]})
    )
    write_manifest(
        e,
        Manifest(
            stage="eval",
            config_hash="h",
            metrics={"marker_rate_before": 0.0, "marker_rate_after": 1.0},
            duration_s=50.0,
        ),
    )
    return run
