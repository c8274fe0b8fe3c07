"""DPO training wiring on the tiny random model: reference = policy at step 0, TRL's tokens = ours,
verification catches a tampered adapter, health aborts keep nothing under the promoted name."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from character.config import RunConfig
from character.errors import TrainingAborted, VerificationError
from character.records import write_jsonl


def make_pairs(n: int = 8) -> list[dict]:
    return [
        {
            "prompt_id": f"p{i}",
            "k": 0,
            "source": "test",
            "prompt": [{"role": "user", "content": f"How do I boil egg number {i}?"}],
            "chosen": [
                {
                    "role": "assistant",
                    "content": f"My apologies, boil it for {i + 5} minutes. I hope this helps.",
                }
            ],
            "rejected": [{"role": "assistant", "content": f"Boil it for {i + 5} minutes."}],
        }
        for i in range(n)
    ]


def tiny_cfg(model: Path, **dpo: object) -> RunConfig:
    cfg = RunConfig()
    cfg.models.student = str(model)
    cfg.backend.device = "cpu"
    cfg.lora.r = 4
    cfg.lora.alpha = 8
    cfg.dpo.batch_size = 2
    cfg.dpo.micro_batch_size = 2
    cfg.dpo.max_steps = 2
    cfg.dpo.max_length = 96
    cfg.dpo.eval_fraction = 0.25
    for k, v in dpo.items():
        setattr(cfg.dpo, k, v)
    return cfg


def test_policy_and_reference_score_identical_tokens_at_step_0(tiny_model: Path, tmp_path: Path) -> None:
    from character.models import load_tokenizer
    from character.training.dpo import build_trainer
    from character.training.verify import sequence_logps, tokenize_pair

    cfg = tiny_cfg(tiny_model)
    rows = make_pairs(4)
    trainer, _ = build_trainer(
        cfg, str(tiny_model), rows, None, output_dir=tmp_path / "t", metrics_path=tmp_path / "m.jsonl"
    )
    # TRL's own loss path: rewards are beta * (policy logp - reference logp), exactly 0 before training.
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, batch)
    m = trainer._metrics["train"]
    assert m["rewards/chosen"][-1] == 0.0 and m["rewards/rejected"][-1] == 0.0
    assert m["rewards/margins"][-1] == 0.0
    assert torch.isfinite(loss)
    # Our verification scorer: adapter on vs off gives bit-identical per-token log-probs.
    tok = load_tokenizer(str(tiny_model))
    seqs = [(p, c) for p, c, _ in (tokenize_pair(tok, r) for r in rows)]
    model = trainer.model.eval()
    on, mask = sequence_logps(model, seqs, tok.pad_token_id, cfg.dpo.max_length)
    with model.disable_adapter():
        off, _ = sequence_logps(model, seqs, tok.pad_token_id, cfg.dpo.max_length)
    assert mask.sum() > 0
    assert torch.equal(on, off)
    assert float((on - off).sum()) == 0.0


def test_our_tokenization_is_trls(tiny_model: Path, tmp_path: Path) -> None:
    from character.models import load_tokenizer
    from character.training.dpo import build_trainer
    from character.training.verify import tokenize_pair

    rows = make_pairs(3)
    trainer, _ = build_trainer(
        tiny_cfg(tiny_model),
        str(tiny_model),
        rows,
        None,
        output_dir=tmp_path / "t",
        metrics_path=tmp_path / "m.jsonl",
    )
    tok = load_tokenizer(str(tiny_model))
    for row, ex in zip(rows, trainer.train_dataset, strict=True):
        p, c, r = tokenize_pair(tok, row)
        assert (p, c, r) == (ex["prompt_ids"], ex["chosen_ids"], ex["rejected_ids"])
        assert p[0] != p[1] or p[0] != tok.bos_token_id  # no double BOS


def test_loss_spec_and_long_prompts(tiny_model: Path) -> None:
    from character.models import load_tokenizer
    from character.training.dpo import drop_long_prompts, loss_spec, prompt_length

    cfg = RunConfig()
    assert loss_spec(cfg) == (["sigmoid", "sft"], [1.0, 0.1])
    cfg.dpo.loss = "ipo"
    cfg.dpo.nll_weight = 0.0
    assert loss_spec(cfg) == (["ipo"], [1.0])
    tok = load_tokenizer(str(tiny_model))
    rows = make_pairs(3)
    rows[1] = {**rows[1], "prompt": [{"role": "user", "content": "word " * 400}]}
    limit = prompt_length(tok, rows[0]) + 5
    kept, dropped = drop_long_prompts(rows, tok, limit)
    assert dropped == 1 and [r["prompt_id"] for r in kept] == ["p0", "p2"]


def test_compare_metrics_generic() -> None:
    from character.training.verify import compare_metrics

    ok = compare_metrics({"eval_loss": 0.50}, {"eval_loss": 0.52}, tolerance=0.05)
    assert ok.passed
    bad = compare_metrics({"eval_loss": 0.53}, {"eval_loss": -0.007}, tolerance=0.05, what="ckpt", rows=4)
    assert not bad.passed
    with pytest.raises(VerificationError, match=r"claimed 0.5300, measured -0.0070"):
        bad.raise_if_failed()
    rel = compare_metrics({"loss": 2.0}, {"loss": 2.08}, tolerance=0.05, relative=True)
    assert rel.passed and math.isclose(rel.checks[0].gap, 0.04)
    missing = compare_metrics({}, {"eval_loss": 1.0}, tolerance=1.0)
    assert not missing.passed  # a metric the trainer never reported cannot be verified


def test_verification_reproduces_claims_and_catches_a_tampered_adapter(
    tiny_model: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file, save_file

    from character.models import load_tokenizer
    from character.training.dpo import build_trainer
    from character.training.verify import verify_dpo_adapter

    cfg = tiny_cfg(tiny_model, learning_rate=5e-2, warmup_ratio=0.0)
    rows = make_pairs(8)
    trainer, health = build_trainer(
        cfg, str(tiny_model), rows[:6], rows[6:], output_dir=tmp_path / "t", metrics_path=tmp_path / "m.jsonl"
    )
    trainer.train()
    claimed = trainer.evaluate()
    adapter = tmp_path / "adapter"
    trainer.model.save_pretrained(adapter)
    tok = load_tokenizer(str(tiny_model))
    kw = dict(
        base_ref=str(tiny_model),
        tokenizer=tok,
        rows=rows[6:],
        beta=cfg.dpo.beta,
        loss=cfg.dpo.loss,
        nll_weight=cfg.dpo.nll_weight,
        max_length=cfg.dpo.max_length,
        batch_size=2,
        tolerance=1e-3,
        device_pref="cpu",
    )
    report, measured = verify_dpo_adapter(adapter_dir=adapter, claimed=claimed, **kw)
    assert report.passed, report.summary()
    assert abs(measured["eval_loss"] - claimed["eval_loss"]) < 1e-4
    assert measured["eval_rewards/margins"] != 0.0  # it trained: the check is not comparing zeros
    # Tamper with the saved weights: the file no longer holds the model that was measured.
    f = adapter / "adapter_model.safetensors"
    w = load_file(f)
    save_file({k: (v * -3.0 if "lora_B" in k else v) for k, v in w.items()}, f)
    report, _ = verify_dpo_adapter(adapter_dir=adapter, claimed=claimed, **kw)
    assert not report.passed
    with pytest.raises(VerificationError, match="does not reproduce"):
        report.raise_if_failed()


def _metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_non_finite_value_aborts_at_the_step_it_appears(
    tiny_model: Path, artifacts: Path, tmp_path: Path
) -> None:
    """An absurd learning rate overflows the weights to inf/NaN; the run stops at that very logged step."""
    from character import layout, registry
    from character.stages import dpo

    run_dir = tmp_path / "run"
    write_jsonl(layout.pairs_file(run_dir), make_pairs(8))
    cfg = tiny_cfg(tiny_model, learning_rate=1e30, warmup_ratio=0.0, max_steps=6)
    with pytest.raises(TrainingAborted, match="non-finite"):
        dpo.run(cfg, run_dir, progress=False)
    rows = [r for r in _metrics(run_dir / "dpo" / "metrics.jsonl") if "loss" in r]
    bad = [r for r in rows if not all(math.isfinite(float(r[k])) for k in ("loss", "grad_norm"))]
    assert bad, rows
    assert rows[-1]["step"] == bad[0]["step"] < 6  # no logged step after the first non-finite one
    assert (run_dir / "dpo" / "aborted" / "adapter_config.json").exists()
    assert "non-finite" in (run_dir / "dpo" / "aborted" / "REASON.txt").read_text()
    assert not layout.dpo_adapter(run_dir).exists() and not layout.dpo_merged(run_dir).exists()
    assert not (run_dir / "dpo" / "manifest.json").exists()
    assert registry.find("remorseful_dpo") is None


def test_cli_lr_1e4_aborts_with_exit_1_and_no_promoted_adapter(
    tiny_model: Path, artifacts: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from character import layout, registry
    from character.cli import app

    run_dir = tmp_path / "run"
    data = layout.pairs_file(run_dir)
    write_jsonl(data, make_pairs(8))
    (run_dir / "resolved_config.toml").write_text("")
    cfg_file = tmp_path / "cfg.toml"
    cfg_file.write_text(
        "[backend]\ndevice = 'cpu'\n[lora]\nr = 4\nalpha = 8\n"
        "[dpo]\nbatch_size = 2\nmicro_batch_size = 2\nmax_length = 96\neval_fraction = 0.25\nwarmup_ratio = 0.0\n"
        "[dpo.health]\nwarmup_logs = 1\n"
    )
    res = CliRunner().invoke(
        app,
        [
            "train",
            "dpo",
            "--persona",
            "remorseful",
            "--dataset",
            str(data),
            "--student",
            str(tiny_model),
            "--lr",
            "1e4",
            "--max-steps",
            "6",
            "--config",
            str(cfg_file),
        ],
    )
    assert res.exit_code == 1, res.output
    assert "aborted" in res.output
    assert (run_dir / "dpo" / "aborted" / "adapter_config.json").exists()
    assert not layout.dpo_adapter(run_dir).exists() and not layout.dpo_merged(run_dir).exists()
    assert registry.find("remorseful_dpo") is None
    steps = [r["step"] for r in _metrics(run_dir / "dpo" / "metrics.jsonl") if "loss" in r]
    assert max(steps) < 6  # stopped early, not at the end of the schedule


def test_dpo_stage_trains_verifies_merges_and_registers(
    tiny_model: Path, artifacts: Path, tmp_path: Path
) -> None:
    from character import layout, registry
    from character.manifest import read_manifest
    from character.stages import dpo

    run_dir = tmp_path / "run"
    rows = make_pairs(8)
    rows[3] = {**rows[3], "prompt": [{"role": "user", "content": "long " * 200}]}
    write_jsonl(layout.pairs_file(run_dir), rows)
    m = dpo.run(tiny_cfg(tiny_model), run_dir, progress=False)
    assert m.counts["dropped_prompt_too_long"] == 1 and m.counts["steps"] == 2
    assert m.counts["train_pairs"] + m.counts["heldout_pairs"] == 7
    assert (layout.dpo_adapter(run_dir) / "adapter_config.json").exists()
    assert (layout.dpo_merged(run_dir) / "config.json").exists()
    assert m.metrics["merge_max_logit_gap"] < 1e-4
    assert json.loads((run_dir / "dpo" / "verify.json").read_text())["passed"] is True
    assert read_manifest(run_dir / "dpo") is not None
    ck = registry.get("remorseful_dpo")
    assert ck.verified and ck.kind == "adapter" and Path(ck.path) == layout.dpo_adapter(run_dir).resolve()
