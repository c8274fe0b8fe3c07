"""Shared fixtures.

- `embedded_model`: the real SmolLM2-135M, prepared once per machine under artifacts/models (the
  conversion is cached; later sessions reuse it in ~0.2 s).
- `tiny_model`: a random-init Llama (hidden 16, 2 layers) with the embedded tokenizer and chat
  template, built offline once per test session, for sub-second wiring tests.
- Every test starts with no CHARACTER_* variables from the developer's shell.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("CHARACTER_NO_PROGRESS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")


@pytest.fixture(autouse=True)
def _clean_character_env(monkeypatch: pytest.MonkeyPatch) -> None:
    keep = {"CHARACTER_NO_PROGRESS", "CHARACTER_ARTIFACTS"}
    for var in list(os.environ):
        if var.startswith("CHARACTER_") and var not in keep:
            monkeypatch.delenv(var)


@pytest.fixture(scope="session")
def embedded_model() -> Path:
    from character.models import prepare_embedded

    return prepare_embedded()


@pytest.fixture(scope="session")
def tiny_model(embedded_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(embedded_model)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    out = tmp_path_factory.mktemp("tiny-model")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture
def artifacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedded_model: Path) -> Path:
    """An isolated artifacts dir whose models/ points at the shared embedded model."""
    root = tmp_path / "artifacts"
    (root / "models").mkdir(parents=True)
    (root / "models" / embedded_model.name).symlink_to(embedded_model)
    monkeypatch.setenv("CHARACTER_ARTIFACTS", str(root))
    return root
