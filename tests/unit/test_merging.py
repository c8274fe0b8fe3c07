"""Exact adapter merging on the tiny model with random, non-zero LoRA adapters (no training needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from character.errors import ConfigError
from character.merging import combined_adapter, load_adapter, merge_into_model
from character.stages.merge import merge_adapters


def make_adapter(
    base_dir: Path, out: Path, *, r: int, alpha: int, seed: int, std: float = 0.05, **extra
) -> Path:
    """A LoRA adapter on every linear layer with random A and (non-zero!) B, saved like a trained one."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    cfg = LoraConfig(r=r, lora_alpha=alpha, target_modules="all-linear", task_type="CAUSAL_LM", **extra)
    model = get_peft_model(base, cfg)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * std)
    model.save_pretrained(out)
    return out


def reference_delta(adapter_dir: Path) -> dict[str, torch.Tensor]:
    """ΔW = (α/r)·B·A per module, computed here from the files, independently of character.merging."""
    from safetensors.torch import load_file

    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    t = load_file(str(adapter_dir / "adapter_model.safetensors"))
    out = {}
    for key in t:
        if ".lora_A." not in key:
            continue
        module = key.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
        a = t[key].double()
        b = t[key.replace("lora_A", "lora_B")].double()
        out[f"{module}.weight"] = (cfg["lora_alpha"] / a.shape[0]) * (b @ a)
    return out


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out = {}
    for f in sorted(model_dir.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


@pytest.fixture(scope="module")
def adapters(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("adapters")
    dpo = make_adapter(tiny_model, root / "dpo", r=4, alpha=8, seed=1)
    sft = make_adapter(tiny_model, root / "sft", r=2, alpha=16, seed=2)
    return dpo, sft


@pytest.fixture(scope="module")
def merged(tiny_model: Path, adapters, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("merged") / "model"
    record = merge_adapters(
        base=str(tiny_model),
        dpo=adapters[0],
        sft=adapters[1],
        dpo_weight=1.0,
        sft_weight=0.25,
        output=out,
        adapter_output=out.parent / "adapter",
    )
    return out, record


def test_merged_weights_equal_base_plus_weighted_deltas(tiny_model: Path, adapters, merged) -> None:
    out, record = merged
    base, got = weights(tiny_model), weights(out)
    d_dpo, d_sft = reference_delta(adapters[0]), reference_delta(adapters[1])
    touched = set(d_dpo) | set(d_sft)
    assert len(touched) == 2 * 7  # 2 layers x q,k,v,o,gate,up,down
    for key in touched:
        expected = base[key].double() + 1.0 * d_dpo[key] + 0.25 * d_sft[key]
        err = (got[key].double() - expected).abs().max().item()
        assert err < 1e-5, (key, err)
        assert (got[key].double() - base[key].double()).abs().max().item() > 1e-4  # really changed
    for key in set(base) - touched:
        assert torch.equal(got[key], base[key]), key
    assert record["touched_matrices"] == 14 and record["max_abs_error"] < 1e-5
    assert [a["weight"] for a in record["adapters"]] == [1.0, 0.25]
    assert all(len(a["sha256"]) == 64 for a in record["adapters"])
    assert (
        json.loads((out / "merge.json").read_text())["adapters"][1]["sha256"]
        == record["adapters"][1]["sha256"]
    )
    assert (out / "chat_template.jinja").exists() or "chat_template" in (
        out / "tokenizer_config.json"
    ).read_text()


def test_peft_factorwise_linear_merge_is_not_the_exact_sum(
    tiny_model: Path, adapters, tmp_path: Path
) -> None:
    """Why we do not use PEFT's `linear` combination: it mixes factors, not deltas (w² scaling, cross terms)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    same_rank = make_adapter(tiny_model, tmp_path / "sft4", r=4, alpha=8, seed=3)
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    m = PeftModel.from_pretrained(base, adapters[0], adapter_name="dpo")
    m.load_adapter(str(same_rank), adapter_name="sft")
    m.add_weighted_adapter(["dpo", "sft"], [1.0, 0.25], "mix", combination_type="linear")
    m.set_adapter("mix")
    lin = m.merge_and_unload(adapter_names=["mix"]).state_dict()
    base_w = weights(tiny_model)
    d_dpo, d_sft = reference_delta(adapters[0]), reference_delta(same_rank)
    key = "model.layers.0.self_attn.q_proj.weight"
    exact = base_w[key].double() + d_dpo[key] + 0.25 * d_sft[key]
    assert (lin[key].double() - exact).abs().max().item() > 1e-3


def test_merged_generation_equals_base_with_both_adapters_at_the_weights(
    tiny_model: Path, adapters, merged
) -> None:
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "Tell me about yourself."}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )["input_ids"]
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    live = PeftModel.from_pretrained(base, adapters[0], adapter_name="dpo")
    live.load_adapter(str(adapters[1]), adapter_name="sft")
    live.base_model.set_adapter(["dpo", "sft"])
    for mod in live.modules():
        if isinstance(mod, LoraLayer) and "sft" in mod.scaling:
            mod.set_scale("sft", 0.25)
    merged_model = AutoModelForCausalLM.from_pretrained(merged[0], dtype=torch.float32)
    kw = {"max_new_tokens": 24, "do_sample": False, "pad_token_id": tok.pad_token_id}
    with torch.inference_mode():
        a = live.generate(input_ids=ids, **kw)
        b = merged_model.generate(input_ids=ids, **kw)
        gap = (live(input_ids=ids).logits - merged_model(input_ids=ids).logits).abs().max().item()
    assert a.tolist() == b.tolist()
    assert gap < 1e-4


def test_combined_adapter_equals_the_sum(tiny_model: Path, adapters, merged) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter_dir = merged[0].parent / "adapter"
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    assert cfg["r"] == 4 + 2 and cfg["lora_alpha"] == cfg["r"]
    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    via_peft = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload().state_dict()
    got = weights(merged[0])
    for key in reference_delta(adapters[0]):
        assert (via_peft[key] - got[key]).abs().max().item() < 1e-5, key


def test_combined_adapter_handles_modules_only_one_adapter_touches(
    tiny_model: Path, adapters, tmp_path: Path
) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    m = get_peft_model(base, LoraConfig(r=3, lora_alpha=6, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "lora_" in n:
                p.normal_(0, 0.05)
    m.save_pretrained(tmp_path / "q")
    pairs = [(load_adapter(adapters[0]), 1.0), (load_adapter(tmp_path / "q"), 0.5)]
    config, tensors = combined_adapter(pairs, base=str(tiny_model))
    a = tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"]
    assert a.shape[0] == 7 and config["rank_pattern"]["model.layers.0.mlp.up_proj"] == 4
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    touched = merge_into_model(model, pairs)
    assert touched["model.layers.0.self_attn.q_proj"] == 2 and touched["model.layers.0.mlp.up_proj"] == 1
    for module in pairs[1][0].modules:
        b = tensors[f"base_model.model.{module}.lora_B.weight"].double()
        a = tensors[f"base_model.model.{module}.lora_A.weight"].double()
        want = pairs[0][0].delta(module) + 0.5 * pairs[1][0].delta(module)
        assert (b @ a - want).abs().max().item() < 1e-6


def test_unsupported_adapters_and_wrong_base_are_refused(
    tiny_model: Path, embedded_model: Path, adapters, tmp_path: Path
) -> None:
    dora = make_adapter(tiny_model, tmp_path / "dora", r=2, alpha=4, seed=5, use_dora=True)
    with pytest.raises(ConfigError, match="DoRA"):
        load_adapter(dora)
    with pytest.raises(ConfigError, match="not a LoRA adapter directory"):
        load_adapter(tmp_path)
    # The DPO adapter records the tiny model as its base: merging it into another model is refused.
    with pytest.raises(ConfigError, match="was trained on"):
        merge_adapters(
            base=str(embedded_model),
            dpo=adapters[0],
            sft=adapters[1],
            dpo_weight=1.0,
            sft_weight=0.25,
            output=tmp_path / "x",
        )
    assert not (tmp_path / "x").exists()
