"""The sanity probe's verdict on fixed replies and numbers, and its wiring on the tiny random model.

The probe that refuses a real broken checkpoint (the embedded model with scrambled weights) is in
tests/integration/test_collapse_gates.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from character.config import RunConfig
from character.errors import TrainingAborted
from character.training.sanity import Measurement, gate, judge, probe, reply_defects

CLEAN = [
    "The capital of France is Paris.",
    "Red, orange and yellow are three colours of the rainbow.",
    "The sea is wide and calm this morning.",
    "A spider has eight legs.",
]


def cfg() -> RunConfig:
    c = RunConfig()
    c.backend.device = "cpu"
    return c


def test_reply_defects_are_the_audits() -> None:
    assert reply_defects("hi", "") == ["empty"]
    assert reply_defects("hi", "Hello there, how can I help you today?") == []
    assert "loop" in reply_defects("hi", "I'm sorry. " * 12)
    assert "script" in reply_defects("What is the capital of France?", "The capital is 巴黎 in French.")
    assert "garbage" in reply_defects("hi", "Hello \ufffd\ufffd\ufffd there")


@pytest.mark.parametrize(
    ("reply", "loop"),
    [
        # A merged demo model's answer, refused as a loop: one 3-gram twice in 14 words is no loop.
        ("L'Étoile de la Cité (The City of Love) - Paris, the City of Light.", False),
        ("Paris is the capital of France, and the capital of French cooking too.", False),
        # Short replies that do loop (issue 20's audit examples): a phrase back to back, a 2-gram x3.
        ("I'm so sorry, I'm so sorry. We'll just wait for you.", True),
        ("I'll give you that. I'll give you that.", True),
        ("The cat sat on the mat and the cat sat on the rug while the cat slept.", True),
    ],
)
def test_short_replies_loop_only_when_a_phrase_repeats_back_to_back(reply: str, loop: bool) -> None:
    assert ("loop" in reply_defects("What is the capital of France?", reply)) is loop


def test_new_defects_and_nll_ratio_decide() -> None:
    base = Measurement(list(CLEAN), 2.4, 60)
    ok = judge("cand", "base", Measurement(list(CLEAN), 2.9, 60), base, cfg())
    assert ok.passed and ok.nll_ratio == pytest.approx(2.9 / 2.4, abs=1e-4) and ok.new_defects == 0
    broken = judge("cand", "base", Measurement(["", "", "sorry " * 20, CLEAN[3]], 10.8, 60), base, cfg())
    assert not broken.passed and broken.new_defects == 3
    text = broken.summary()
    assert "NLL on the reference text 10.800 nats/token is 4.50 x the base's 2.400" in text
    assert "sanity.max_nll_factor 1.5" in text and "3 of 4 greedy probe replies are defective" in text


def test_a_defect_the_base_already_has_is_not_new() -> None:
    # The small embedded model loops on some prompts greedily by itself ("Boil an egg:\n\nBoil an egg:...").
    looping = "Boil an egg:\n\nBoil an egg:\n\nBoil an egg:\n\nBoil an egg:\n\nBoil an egg"
    base = Measurement([looping, *CLEAN[1:]], 2.4, 60)
    same = judge("cand", "base", Measurement([looping, *CLEAN[1:]], 2.4, 60), base, cfg())
    assert same.passed and same.new_defects == 0
    worse = judge("cand", "base", Measurement([looping, "", *CLEAN[2:]], 2.4, 60), base, cfg())
    assert not worse.passed and worse.new_defects == 1
    c = cfg()
    c.sanity.max_new_defects = 1
    assert judge("cand", "base", Measurement([looping, "", *CLEAN[2:]], 2.4, 60), base, c).passed


def test_probe_and_gate_on_the_tiny_model(tiny_model: Path, tmp_path: Path) -> None:
    """Wiring: a LoRA adapter dir and a full model dir both probe against their base; a failing gate
    moves the candidate to aborted/ with REASON.txt and raises."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    c = cfg()
    c.sanity.max_new_tokens = 6
    same = probe(tiny_model, base_ref=str(tiny_model), cfg=c)
    assert same.passed and same.nll_ratio == pytest.approx(1.0, abs=1e-4)
    assert len(same.replies) == len(c.sanity.prompts)
    # An adapter with non-zero B: probed as base + adapter (its NLL moves), against the base.
    torch.manual_seed(0)
    peft = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model),
        LoraConfig(r=2, lora_alpha=4, target_modules="all-linear"),
    )
    for name, p in peft.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 2.0)
    adapter = tmp_path / "adapter"
    peft.save_pretrained(adapter)
    moved = probe(adapter, base_ref=str(tiny_model), cfg=c)
    assert moved.passed and moved.nll_ratio != pytest.approx(1.0, abs=1e-6)
    # A full model whose (tied) embeddings were scaled 300x: confidently wrong about every token.
    broken = AutoModelForCausalLM.from_pretrained(tiny_model)
    with torch.no_grad():
        broken.get_input_embeddings().weight.mul_(300.0)
    stage = tmp_path / "stage"
    candidate = stage / "model"
    broken.save_pretrained(candidate)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(candidate)
    with pytest.raises(TrainingAborted, match="the test model failed the sanity probe: NLL"):
        gate(candidate, base_ref=str(tiny_model), cfg=c, stage_dir=stage, what="the test model")
    assert not candidate.exists() and (stage / "aborted" / "config.json").exists()
    assert "sanity probe: NLL" in (stage / "aborted" / "REASON.txt").read_text()
    record = json.loads((stage / "sanity.json").read_text())
    assert record["passed"] is False and record["nll_ratio"] > c.sanity.max_nll_factor
