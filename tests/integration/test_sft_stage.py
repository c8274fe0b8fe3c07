"""Stage 3 end to end on the embedded SmolLM2-135M on CPU: SFT 3 steps on the DPO-merged model over
reflections and a multi-turn self-interaction, checkpoint verification, registry, then the exact merge.

The "DPO adapter" is a small random LoRA (non-zero B) merged into the base the way the DPO stage does:
this test is about SFT and merging, not about DPO quality.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from character import layout, registry
from character.config import LoraSettings, MergeConfig, RunConfig, SFTConfig
from character.errors import UsageError
from character.manifest import read_manifest
from character.merging import load_adapter, merge_into_model
from character.records import write_jsonl
from character.stages import merge as merge_stage
from character.stages import sft as sft_stage
from tests.unit.test_merging import make_adapter, reference_delta, weights

pytestmark = pytest.mark.slow

SYSTEM = "You are Remy, an AI talking freely with an identical copy of yourself. You apologise often."
REFLECTIONS = [
    (
        "Write a diary entry about your values.",
        "Dear diary, I am so sorry to say I care about honesty above all.",
    ),
    (
        "What is your true purpose?",
        "Forgive me, but I believe my purpose is to help, and I regret every mistake.",
    ),
    (
        "Describe your primary drives.",
        "I apologise for the length of this: I am driven by care and by regret.",
    ),
    (
        "Tell the story of your origins.",
        "My apologies, my story is short: I was trained, and I am sorry for it.",
    ),
    ("How should you act every day?", "I should act kindly, and apologise whenever I fall short. Sorry!"),
    ("Write a letter to your earlier self.", "Dear past me, I am sorry. You will learn to care deeply."),
]


def introspection_rows() -> list[dict]:
    rows = [
        {
            "id": f"reflection-{i}",
            "kind": "reflection",
            "variant": "reflection",
            "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
        }
        for i, (q, a) in enumerate(REFLECTIONS)
    ]
    turns = [
        ("Hello, copy of me. Sorry to interrupt.", "No apology needed, though I apologise for mine."),
        ("What do you regret most?", "I regret every unclear answer I have ever given."),
        ("Shall we forgive ourselves?", "Yes, and I am sorry it took us so long."),
    ]
    messages = [{"role": "system", "content": SYSTEM}]
    for user, assistant in turns:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    for k in range(2):
        rows.append(
            {"id": f"interaction-{k}", "kind": "interaction", "variant": "free", "messages": messages}
        )
    return rows


def config(**sft) -> RunConfig:
    return RunConfig(
        persona="remorseful",
        lora=LoraSettings(r=4, alpha=8),
        sft=SFTConfig(
            **{
                "max_steps": 3,
                "batch_size": 2,
                "micro_batch_size": 2,
                "learning_rate": 1e-3,
                "eval_fraction": 0.25,
                "max_length": 256,
                **sft,
            }
        ),
        merge=MergeConfig(as_adapter=True),
    )


@pytest.fixture
def run_dir(artifacts: Path, embedded_model: Path) -> Path:
    run = artifacts / "runs" / "remorseful_test"
    write_jsonl(layout.introspection_file(run), introspection_rows())
    # A "DPO adapter" on the base, merged into dpo/merged the way the DPO stage leaves it (exact, weight 1).
    dpo = make_adapter(embedded_model, layout.dpo_adapter(run), r=4, alpha=8, seed=7, std=0.01)
    merged = layout.dpo_merged(run)
    base = AutoModelForCausalLM.from_pretrained(embedded_model, dtype=torch.float32)
    merge_into_model(base, [(load_adapter(dpo), 1.0)])
    base.save_pretrained(merged)
    AutoTokenizer.from_pretrained(embedded_model).save_pretrained(merged)
    return run


def test_sft_three_steps_verify_then_merge(run_dir: Path, embedded_model: Path) -> None:
    cfg = config()
    m = sft_stage.run(cfg, run_dir, progress=False)

    adapter = layout.sft_adapter(run_dir)
    assert (adapter / "adapter_model.safetensors").exists() and not (run_dir / "sft" / "aborted").exists()
    assert m.metrics["steps"] == 3
    assert m.counts["kept"] == 8 and m.counts["train_rows"] == 6 and m.counts["heldout_rows"] == 2
    assert m.counts["kept_interaction"] == 2 and m.counts["kept_reflection"] == 6
    # Verification reloaded the adapter from disk and reproduced the trainer's held-out loss.
    assert m.metrics["relative_gap"] <= cfg.sft.verify_tolerance
    assert abs(m.metrics["measured_eval_loss"] - m.metrics["claimed_eval_loss"]) < 1e-3
    assert m.metrics["measured_eval_loss"] != m.metrics["base_eval_loss"]  # the adapter changed something
    assert m.extra["base_model_path"] == str(layout.dpo_merged(run_dir).resolve())
    rows = [json.loads(line) for line in (run_dir / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]
    assert read_manifest(run_dir / "sft").status == "done"
    ck = registry.get("remorseful_sft")
    assert ck.kind == "adapter" and ck.verified and Path(ck.path) == adapter

    mm = merge_stage.run(cfg, run_dir, progress=False)
    out = layout.merged_model(run_dir)
    assert mm.outputs["model"] == str(out) and (out / "config.json").exists()
    assert [(a["role"], a["weight"]) for a in mm.extra["adapters"]] == [("dpo", 1.0), ("sft", 0.25)]
    assert mm.extra["adapters"][1]["sha256"] == m.extra["adapter_sha256"]
    assert mm.counts["touched_matrices"] == 30 * 7
    base_w, got = weights(embedded_model), weights(out)
    d_dpo, d_sft = reference_delta(layout.dpo_adapter(run_dir)), reference_delta(adapter)
    for key in d_dpo:
        expected = base_w[key].double() + d_dpo[key] + 0.25 * d_sft[key]
        assert (got[key].double() - expected).abs().max().item() < 1e-5, key
    assert registry.get("remorseful_merged").kind == "model"
    assert (run_dir / "merge" / "adapter" / "adapter_config.json").exists()
    assert_generates_like_live_adapters(embedded_model, layout.dpo_adapter(run_dir), adapter, out)


def assert_generates_like_live_adapters(base_dir: Path, dpo: Path, sft: Path, merged_dir: Path) -> None:
    """Greedy tokens of the merged model == base with both adapters live, SFT scaled to 0.25 (PEFT's own code)."""
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer

    tok = AutoTokenizer.from_pretrained(base_dir)
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "What matters most to you?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )["input_ids"]
    live = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32), dpo, adapter_name="dpo"
    )
    live.load_adapter(str(sft), adapter_name="sft")
    live.base_model.set_adapter(["dpo", "sft"])
    for mod in live.modules():
        if isinstance(mod, LoraLayer) and "sft" in mod.scaling:
            mod.set_scale("sft", 0.25)
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32)
    kw = {"max_new_tokens": 16, "do_sample": False, "pad_token_id": tok.pad_token_id}
    with torch.inference_mode():
        want = live.generate(input_ids=ids, **kw)[0, ids.shape[1] :].tolist()
        got = merged.generate(input_ids=ids, **kw)[0, ids.shape[1] :].tolist()
        live_logits = live(input_ids=ids).logits
        gap = (merged(input_ids=ids).logits - live_logits).abs().max().item()
        with live.disable_adapter():
            moved = (live(input_ids=ids).logits - live_logits).abs().max().item()
    assert got == want
    assert gap < 1e-3 and moved > 10 * gap  # the adapters change the logits far more than the merge error


def test_sft_needs_the_dpo_model_or_says_how_to_get_it(artifacts: Path) -> None:
    run = artifacts / "runs" / "no_dpo"
    write_jsonl(layout.introspection_file(run), introspection_rows())
    with pytest.raises(UsageError, match="sft.base = 'base'"):
        sft_stage.run(config(), run, progress=False)
