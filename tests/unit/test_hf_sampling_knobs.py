"""The hf backend samples like vLLM: top-k before the nucleus, min-p on tempered probabilities, every EOS
id of the model's generation_config, chat-template arguments in the rendered prompt.

Processors are checked against transformers' own warpers and plain code; the backend runs a real tiny
model (greedy, so the tokens it would emit are known) whose generation_config lists two EOS ids."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import MinPLogitsWarper, TemperatureLogitsWarper, TopKLogitsWarper

from character.backends.hf_logits import FastTopP, MinP, TopK


def _scores(seed: int = 0, rows: int = 4, vocab: int = 500) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, vocab, generator=g) * 3


def _kept(scores: torch.Tensor) -> list[set[int]]:
    return [set(torch.isfinite(r).nonzero().flatten().tolist()) for r in scores]


@pytest.mark.parametrize("k", [1, 7, 40, 499, 500, 10_000])
def test_top_k_keeps_what_transformers_keeps(k: int) -> None:
    s = _scores(k)
    assert _kept(TopK(k)(None, s)) == _kept(TopKLogitsWarper(top_k=min(k, 500))(None, s.clone()))


@pytest.mark.parametrize(("min_p", "temperature"), [(0.05, 0.7), (0.2, 1.0), (0.9, 1.3)])
def test_min_p_keeps_what_transformers_keeps_at_that_temperature(min_p: float, temperature: float) -> None:
    s = _scores(int(min_p * 100))
    ours = MinP(min_p, temperature)(None, s)
    ref = MinPLogitsWarper(min_p)(None, TemperatureLogitsWarper(temperature)(None, s.clone()))
    assert _kept(ours) == _kept(ref)
    assert all(len(k) < 500 for k in _kept(ours))  # drops something ...
    assert all(len(k) >= 1 for k in _kept(ours))  # ... never everything


def test_top_k_then_top_p_is_vllms_order() -> None:
    """vLLM masks top-k, renormalises, then applies top-p: a smaller nucleus than top-p on the full
    distribution. Plain code for that order must agree with TopK followed by FastTopP."""
    s, k, p, t = _scores(3), 20, 0.6, 0.8
    ours = _kept(FastTopP(p, t)(None, TopK(k)(None, s)))
    for row, kept in zip(s, ours, strict=True):
        top = row.topk(k).indices.tolist()
        probs = (row[top] / t).softmax(-1).tolist()
        ranked = sorted(zip(probs, top, strict=True), reverse=True)
        expect, mass = set(), 0.0
        for prob, tok in ranked:
            if mass >= p:
                break
            expect.add(tok)
            mass += prob
        assert kept == expect


def test_knob_validation() -> None:
    with pytest.raises(ValueError):
        TopK(0)
    with pytest.raises(ValueError):
        MinP(0.0)


# ---- the backend on a real tiny model -----------------------------------------------------------------


def _greedy(model_dir: Path, **kw: object) -> tuple[list[int], str, str]:
    from character.backends.base import GenerationRequest, SamplingParams
    from character.backends.hf import HFBackend

    b = HFBackend(str(model_dir), device="cpu", threads=1, **kw)  # type: ignore[arg-type]
    req = GenerationRequest(
        [{"role": "user", "content": "Say something."}], SamplingParams(temperature=0.0, max_new_tokens=12)
    )
    [[c]] = b.generate([req], progress=False)
    ids = b.tokenizer(c.text, add_special_tokens=False)["input_ids"] if c.text else []
    return ids, c.text, c.finish_reason


def test_hf_stops_on_every_eos_id_of_the_generation_config(tiny_model: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = tmp_path / "two-eos"
    shutil.copytree(tiny_model, model)
    (model / "generation_config.json").write_text(json.dumps({"eos_token_id": tok.eos_token_id}))
    ids, text, finish = _greedy(model)
    assert finish == "length" and tok.eos_token_id not in ids  # this random model never ends by itself
    # Gemma-3 style: a second end-of-turn id that is not the tokenizer's eos, made one of the tokens the
    # model greedily emits; the backend must stop right there.
    from character.backends.hf import HFBackend

    raw = HFBackend(str(model), device="cpu", threads=1)
    from character.chat import encode

    prompt = encode(
        raw.tokenizer, [{"role": "user", "content": "Say something."}], add_generation_prompt=True
    )
    out = raw.lm.generate(
        input_ids=torch.tensor([prompt]), max_new_tokens=12, do_sample=False, eos_token_id=tok.eos_token_id
    )[0, len(prompt) :].tolist()
    # The first token the model has not emitted before (the very first when it only repeats one).
    j = next((i for i in range(1, len(out)) if out[i] not in out[:i]), 0)
    stop_id = out[j]
    (model / "generation_config.json").write_text(json.dumps({"eos_token_id": [tok.eos_token_id, stop_id]}))
    b = HFBackend(str(model), device="cpu", threads=1)
    from character.backends.base import GenerationRequest, SamplingParams

    req = GenerationRequest(
        [{"role": "user", "content": "Say something."}], SamplingParams(temperature=0.0, max_new_tokens=12)
    )
    [[c]] = b.generate([req], progress=False)
    assert c.finish_reason == "stop" and c.completion_tokens == j + 1  # j tokens and the EOS
    assert c.text == b.tokenizer.decode(out[:j], skip_special_tokens=False).strip()


def test_chat_template_kwargs_reach_the_rendered_prompt(tiny_model: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from character.backends.base import GenerationRequest, SamplingParams
    from character.backends.hf import HFBackend

    model = tmp_path / "thinking-template"
    shutil.copytree(tiny_model, model)
    tok = AutoTokenizer.from_pretrained(model)
    # A Qwen3-like switch: with enable_thinking false the template writes an empty think block.
    tok.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n"
        "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n{% endif %}{% endif %}"
    )
    tok.save_pretrained(model)
    req = GenerationRequest(
        [{"role": "user", "content": "Hi."}], SamplingParams(temperature=0.0, max_new_tokens=2)
    )
    [[plain]] = HFBackend(str(model), device="cpu", threads=1).generate([req], progress=False)
    b = HFBackend(str(model), device="cpu", threads=1, chat_template_kwargs={"enable_thinking": False})
    [[off]] = b.generate([req], progress=False)
    extra = len(tok("<think>\n\n</think>\n\n", add_special_tokens=False)["input_ids"])
    assert off.prompt_tokens == plain.prompt_tokens + extra
