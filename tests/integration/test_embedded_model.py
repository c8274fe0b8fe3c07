"""The embedded model: prepared once, idempotent, reloads, and answers through its chat template."""

from __future__ import annotations

from pathlib import Path

from character.backends import GenerationRequest, SamplingParams
from character.backends.hf import HFBackend
from character.chat import encode, render
from character.models import is_complete, load_tokenizer, prepare_embedded


def test_prepare_is_idempotent(embedded_model: Path) -> None:
    weights = next(embedded_model.glob("*.safetensors"))
    before = weights.stat().st_mtime_ns
    assert prepare_embedded() == embedded_model
    assert weights.stat().st_mtime_ns == before
    assert is_complete(embedded_model)
    assert not (embedded_model / "config.json").read_text().count("gguf")


def test_chat_template_and_no_double_bos(embedded_model: Path) -> None:
    tok = load_tokenizer("embedded")
    msgs = [{"role": "user", "content": "Hello"}]
    text = render(tok, msgs, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system") and text.endswith("<|im_start|>assistant\n")
    ids = encode(tok, msgs, add_generation_prompt=True)
    assert ids[0] == tok.convert_tokens_to_ids("<|im_start|>") and ids[1] != ids[0]


def test_generates_a_reply(embedded_model: Path) -> None:
    backend = HFBackend("embedded", device="cpu", batch_size=4)
    req = GenerationRequest(
        [{"role": "user", "content": "What is the capital of France?"}],
        SamplingParams(temperature=0, max_new_tokens=24),
    )
    [[c]] = backend.generate([req], progress=False)
    assert "Paris" in c.text
    assert c.finish_reason == "stop"
    assert "<|im_end|>" not in c.text and c.completion_tokens > 0 and c.prompt_tokens > 10
