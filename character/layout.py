"""Where each stage reads and writes inside a run directory. Stages share nothing but these files.

run_dir/
  resolved_config.toml, config_hash.txt
  distill/     pairs.jsonl (kept), attempts.jsonl (every generation), rejects.jsonl, stats.json,
               previews.md, manifest.json
  dpo/         adapter/ (verified), merged/ (base + adapter, exact), aborted/ (a failed run's adapter),
               metrics.jsonl, manifest.json
  introspect/  reflections.jsonl, interactions.jsonl, introspection.jsonl (kept, SFT input),
               rejects.jsonl, stats.json, manifest.json
  sft/         adapter/, aborted/, metrics.jsonl, manifest.json
  merge/       model/ (full safetensors model), adapter/ (optional combined LoRA), manifest.json
  eval/        markers.json, ..., manifest.json
"""

from __future__ import annotations

from pathlib import Path

STAGES = ("distill", "dpo", "introspect", "sft", "merge", "eval")


def stage_dir(run_dir: Path, stage: str) -> Path:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    d = Path(run_dir) / stage
    d.mkdir(parents=True, exist_ok=True)
    return d


def pairs_file(run_dir: Path) -> Path:
    return Path(run_dir) / "distill" / "pairs.jsonl"


def dpo_adapter(run_dir: Path) -> Path:
    return Path(run_dir) / "dpo" / "adapter"


def dpo_merged(run_dir: Path) -> Path:
    return Path(run_dir) / "dpo" / "merged"


def introspection_file(run_dir: Path) -> Path:
    return Path(run_dir) / "introspect" / "introspection.jsonl"


def sft_adapter(run_dir: Path) -> Path:
    return Path(run_dir) / "sft" / "adapter"


def merged_model(run_dir: Path) -> Path:
    return Path(run_dir) / "merge" / "model"
