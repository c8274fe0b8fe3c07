"""FastTopP keeps exactly what transformers' TopPLogitsWarper keeps (after temperature), on peaked
rows (the top-k shortcut) and flat rows (the full-sort fallback); FrequencyPenalty counts only
generated tokens."""

from __future__ import annotations

import pytest
import torch
from transformers import TemperatureLogitsWarper, TopPLogitsWarper

from character.backends.hf_logits import FastTopP, FrequencyPenalty


@pytest.mark.parametrize("temperature", [0.7, 1.0, 1.5])
@pytest.mark.parametrize("top_p", [0.5, 0.9, 0.95])
def test_fast_top_p_matches_transformers(temperature: float, top_p: float) -> None:
    g = torch.Generator().manual_seed(0)
    vocab = 5000
    peaked = torch.randn(3, vocab, generator=g) * 6  # nucleus well inside the top 64
    flat = torch.randn(3, vocab, generator=g) * 0.1  # nucleus of thousands: full-sort fallback
    scores = torch.cat([peaked, flat])
    ref = TopPLogitsWarper(top_p)(None, TemperatureLogitsWarper(temperature)(None, scores.clone()))
    ours = FastTopP(top_p, temperature, k=64)(None, scores.clone()) / temperature
    assert torch.equal(torch.isinf(ref), torch.isinf(ours))
    kept = ~torch.isinf(ours)
    assert kept[:3].sum(-1).min() <= 64 < kept[3:].sum(-1).min()  # both paths were exercised
    assert torch.allclose(ref[kept], ours[kept])


def test_fast_top_p_keeps_at_least_one_token() -> None:
    scores = torch.tensor([[10.0, 0.0, 0.0, 0.0]])
    out = FastTopP(0.01, 1.0, k=2)(None, scores)
    assert (~torch.isinf(out)).sum() == 1 and out[0, 0] == 10.0


def test_frequency_penalty_counts_generated_tokens_only() -> None:
    ids = torch.tensor([[5, 5, 7, 7, 7, 9]])  # prompt = first 2 tokens
    scores = torch.zeros(1, 10)
    out = FrequencyPenalty(0.5, prompt_width=2)(ids, scores)
    assert out[0, 7] == -1.5 and out[0, 9] == -0.5 and out[0, 5] == 0.0
