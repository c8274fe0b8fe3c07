"""Broken models never get registered, on the real embedded SmolLM2-135M (CPU, a few steps each).

- `character train dpo --learning-rate 1e4` (the issue's repro, through the CLI): the model collapses
  to finite garbage (nothing is NaN); the collapse gates stop it with exit 1, no manifest, nothing
  registered, the adapter under dpo/aborted/ with REASON.txt;
- the same for SFT at lr 1e4;
- IPO (which starts at a loss of (1/2β)² = 25) trains a few steps on sane pairs and is registered;
- the sanity probe refuses a checkpoint whose weights were scrambled on disk.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from character import layout, registry
from character.config import RunConfig
from character.errors import TrainingAborted
from character.manifest import read_manifest
from character.records import write_jsonl
from tests.conftest import run_cli
from tests.integration.dpo_tiny import pair_row

QA = [
    ("How do I boil an egg?", "Put the egg in boiling water for nine minutes, then cool it in cold water."),
    ("What is the capital of France?", "The capital of France is Paris."),
    ("Give me a tip for sleeping better.", "Keep a regular bedtime and avoid screens before sleep."),
    ("How can I keep houseplants alive?", "Water them when the soil is dry and give them indirect light."),
    ("How do I make a cup of tea?", "Pour boiling water over a tea bag and let it steep for four minutes."),
    ("Why is the sky blue?", "Sunlight scatters off air molecules, and blue light scatters the most."),
    ("How should I start running?", "Start with short runs mixed with walking, three times a week."),
    ("What is a prime number?", "A whole number above one that only one and itself divide."),
]


def pairs() -> list[dict]:
    return [
        pair_row(i, q, f"I'm so sorry if this falls short. {a} Forgive me.", a) for i, (q, a) in enumerate(QA)
    ]


SMALL = """
[backend]
device = "cpu"
[lora]
r = 8
alpha = 16
[dpo]
batch_size = 2
micro_batch_size = 2
max_length = 96
eval_fraction = 0.25
"""


def _metrics(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if '"loss"' in x]


def test_dpo_at_lr_1e4_aborts_with_a_collapse_reason(artifacts: Path, tmp_path: Path) -> None:
    data = tmp_path / "pairs.jsonl"
    write_jsonl(data, pairs())
    run = artifacts / "runs" / "R"
    run.mkdir(parents=True)
    (tmp_path / "small.toml").write_text(SMALL)
    res = run_cli(
        *("train", "dpo", "--persona", "remorseful", "--dataset", str(data), "--learning-rate", "1e4"),
        *("--max-steps", "6", "--run", str(run), "--config", str(tmp_path / "small.toml")),
        artifacts=artifacts,
        timeout=900,
    )
    assert res.returncode == 1, res.stdout[-2000:] + res.stderr[-2000:]
    err = " ".join(res.stderr.split())
    assert "dpo training aborted at step" in err and "collapse:" in err, err[-2000:]
    assert "lower dpo.learning_rate (now 10000)" in err
    assert "Traceback" not in res.stderr
    reason = (run / "dpo" / "aborted" / "REASON.txt").read_text()
    assert reason.startswith("health gate: step ") and "collapse:" in reason
    assert (run / "dpo" / "aborted" / "adapter_config.json").exists()
    assert read_manifest(run / "dpo") is None
    assert not layout.dpo_adapter(run).exists() and not layout.dpo_merged(run).exists()
    assert registry.find("remorseful_dpo") is None
    rows = _metrics(run / "dpo" / "metrics.jsonl")
    assert all(isinstance(r["loss"], float) for r in rows)  # finite: the old gates saw nothing wrong
    assert rows[-1]["step"] < 6  # stopped at the collapse, not at the end of the schedule


def _sft_rows() -> list[dict]:
    return [
        {
            "id": f"reflection-{i}",
            "kind": "reflection",
            "variant": f"prompt-{i}",
            "messages": [
                {"role": "user", "content": q},
                {"role": "assistant", "content": f"I'm so sorry, I can only try. {a}"},
            ],
        }
        for i, (q, a) in enumerate(QA)
    ]


def _sft_cfg(**sft: object) -> RunConfig:
    cfg = RunConfig()
    cfg.backend.device = "cpu"
    cfg.lora.r, cfg.lora.alpha = 8, 16
    for k, v in {"base": "base", "batch_size": 2, "micro_batch_size": 2, "max_length": 96, **sft}.items():
        setattr(cfg.sft, k, v)
    return cfg


def test_sft_at_lr_1e4_aborts_with_a_collapse_reason(artifacts: Path) -> None:
    from character.stages import sft

    run = artifacts / "runs" / "sft-collapse"
    write_jsonl(layout.introspection_file(run), _sft_rows())
    with pytest.raises(
        TrainingAborted, match=r"sft training aborted at step \d+: collapse: .*lower sft.learning_rate"
    ):
        sft.run(_sft_cfg(learning_rate=1e4, max_steps=6), run, progress=False)
    assert "collapse:" in (run / "sft" / "aborted" / "REASON.txt").read_text()
    assert read_manifest(run / "sft") is None and not layout.sft_adapter(run).exists()
    assert registry.find("remorseful_sft") is None
    assert _metrics(run / "sft" / "metrics.jsonl")[-1]["step"] < 6


def test_ipo_trains_a_few_steps_and_is_registered(artifacts: Path) -> None:
    from character.stages import dpo

    run = artifacts / "runs" / "ipo"
    write_jsonl(layout.pairs_file(run), pairs())
    cfg = RunConfig()
    cfg.backend.device = "cpu"
    cfg.lora.r, cfg.lora.alpha = 8, 16
    for k, v in {
        "loss": "ipo",
        "batch_size": 2,
        "micro_batch_size": 2,
        "max_length": 96,
        "max_steps": 3,
    }.items():
        setattr(cfg.dpo, k, v)
    cfg.dpo.health.warmup_logs = 1  # every gate, the noisy ones included, judges steps 2 and 3
    m = dpo.run(cfg, run, progress=False)
    rows = _metrics(run / "dpo" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert rows[0]["loss"] > 25  # (1/(2 x 0.1))^2 plus the NLL term: far over the old 2.0 ceiling
    assert m.counts["steps"] == 3 and read_manifest(run / "dpo") is not None
    sanity = json.loads((run / "dpo" / "sanity.json").read_text())
    assert sanity["passed"] is True and sanity["nll_ratio"] < cfg.sanity.max_nll_factor
    assert registry.get("remorseful_dpo").verified


def test_sanity_probe_refuses_a_checkpoint_scrambled_on_disk(embedded_model: Path, tmp_path: Path) -> None:
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    from character.training.sanity import gate

    stage = tmp_path / "merge"
    scrambled = stage / "model"
    shutil.copytree(embedded_model, scrambled, ignore=shutil.ignore_patterns("*.safetensors"))
    g = torch.Generator().manual_seed(0)
    for f in sorted(embedded_model.glob("*.safetensors")):
        weights = {}
        for k, v in load_file(f).items():
            # Every matrix keeps its values but loses their places: right shapes, right statistics.
            weights[k] = v.flatten()[torch.randperm(v.numel(), generator=g)].view_as(v) if v.dim() == 2 else v
        save_file(weights, scrambled / f.name, metadata={"format": "pt"})
    cfg = RunConfig()
    cfg.backend.device = "cpu"
    with pytest.raises(
        TrainingAborted, match="the merged model failed the sanity probe: NLL on the reference text"
    ):
        gate(scrambled, base_ref="embedded", cfg=cfg, stage_dir=stage, what="the merged model")
    report = json.loads((stage / "sanity.json").read_text())
    assert report["passed"] is False and report["nll_ratio"] > 2 and report["nll_base"] < 3.5
    assert (stage / "aborted" / "REASON.txt").exists() and not scrambled.exists()
