"""Logits processors for the `hf` backend: an exact, faster nucleus (top-p) filter and an OpenAI-style
frequency penalty (transformers has no frequency penalty of its own).

transformers' `TopPLogitsWarper` sorts the whole vocabulary (49k entries for SmolLM2) for every row
at every step, about 15 % of a CPU decode step at batch 8. The nucleus is almost always a few dozen
tokens, so `FastTopP` takes the top `k` first and sorts only when those `k` do not hold `top_p` of the
mass. It keeps exactly the tokens `TopPLogitsWarper` keeps (a token stays when the mass ranked above
it is below `top_p`; at least one token always stays).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import LogitsProcessor


class FastTopP(LogitsProcessor):
    """Nucleus filter, same kept set as transformers' TopPLogitsWarper, without a full sort per step.

    transformers runs custom processors before its temperature warper, so the nucleus is computed here
    on `scores / temperature` (masking first and scaling after keeps the same tokens).
    """

    def __init__(self, top_p: float, temperature: float = 1.0, k: int = 256):
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        self.top_p = top_p
        self.temperature = temperature if temperature > 0 else 1.0
        self.k = k

    def __call__(self, input_ids: Any, scores: torch.Tensor) -> torch.Tensor:
        if self.top_p >= 1.0:
            return scores
        probs = (scores.float() / self.temperature).softmax(dim=-1)
        k = min(self.k, scores.shape[-1])
        top_probs, _ = probs.topk(k, dim=-1)
        covered = top_probs.sum(dim=-1) >= self.top_p
        out = scores.clone()
        if covered.any():
            rows = covered.nonzero(as_tuple=True)[0]
            p = top_probs[rows]
            # Mass ranked strictly above each candidate; a candidate stays while that is < top_p.
            above = p.cumsum(dim=-1) - p
            keep = above < self.top_p
            keep[:, 0] = True
            n_keep = keep.sum(dim=-1, keepdim=True)
            threshold = p.gather(-1, n_keep - 1)
            sub = out[rows]
            out[rows] = sub.masked_fill(probs[rows] < threshold, -float("inf"))
        if not covered.all():
            rows = (~covered).nonzero(as_tuple=True)[0]
            out[rows] = _full_sort_top_p(out[rows], probs[rows], self.top_p)
        return out


def _full_sort_top_p(scores: torch.Tensor, probs: torch.Tensor, top_p: float) -> torch.Tensor:
    sorted_probs, sorted_idx = torch.sort(probs, descending=False)
    cum = sorted_probs.cumsum(dim=-1)
    remove = cum <= (1 - top_p)
    remove[..., -1:] = False
    mask = remove.scatter(1, sorted_idx, remove)
    return scores.masked_fill(mask, -float("inf"))


class FrequencyPenalty(LogitsProcessor):
    """Subtract `penalty x count` from each token's logit, counting only the generated tokens
    (OpenAI's `frequency_penalty`; the prompt does not count)."""

    def __init__(self, penalty: float, prompt_width: int):
        self.penalty = penalty
        self.prompt_width = prompt_width

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        generated = input_ids[:, self.prompt_width :]
        if self.penalty == 0 or generated.shape[1] == 0:
            return scores
        counts = torch.zeros_like(scores)
        counts.scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
        return scores - self.penalty * counts


class SeededSampler(LogitsProcessor):
    """Draw each row's next token from its own random stream, seeded per request (`seeds.py`).

    `torch.manual_seed` per batch ties a sample to the batch it lands in: the same (prompt, k) drawn
    in another chunk, after a resume or next to other prompts, is another sample, and all rows share
    one stream. Here row i owns a generator seeded `seeds[i]` that yields one uniform number per step;
    the token is found by inverse CDF on `softmax(scores / temperature)` (after top-p masking) and
    returned as the only finite logit, so greedy decoding (`do_sample=False`) picks exactly it. Runs
    last: transformers appends custom processors after its own (repetition penalty first).
    """

    def __init__(self, seeds: list[int], temperature: float, top_k: int = 0):
        if temperature <= 0:
            raise ValueError("SeededSampler samples; use greedy decoding for temperature 0")
        self.temperature = temperature
        self.top_k = top_k  # <= 0: off (vLLM's -1)
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]

    def __call__(self, input_ids: Any, input_scores: torch.Tensor) -> torch.Tensor:
        scores = input_scores
        if scores.shape[0] != len(self.generators):
            raise ValueError(f"{scores.shape[0]} rows but {len(self.generators)} seeds")
        # float64: a float32 u <= 1 - 2**-24 times the row total stays strictly below it, so the search never runs
        # off the end; `right=True` lands on a token whose probability is positive (u = 0 included).
        scores = scores.double()
        if 0 < self.top_k < scores.shape[-1]:
            kth = scores.topk(self.top_k, dim=-1).values[:, -1:]
            scores = scores.masked_fill(scores < kth, -float("inf"))
        cdf = (scores / self.temperature).softmax(dim=-1).cumsum(dim=-1)
        u = torch.stack([torch.rand((), generator=g) for g in self.generators]).double()
        idx = torch.searchsorted(cdf, (u.to(cdf.device) * cdf[:, -1]).unsqueeze(-1), right=True)
        out = torch.full_like(input_scores, -float("inf"))
        return out.scatter_(1, idx, 0.0)


class TopK(LogitsProcessor):
    """Keep the `k` highest logits. Placed before the nucleus filter, as vLLM applies them (top-k first,
    then top-p on what is left, renormalised), so both engines keep the same tokens."""

    def __init__(self, k: int):
        if k < 1:
            raise ValueError(f"top_k must be >= 1 here (0 or -1 means off: leave the processor out), got {k}")
        self.k = k

    def __call__(self, input_ids: Any, scores: torch.Tensor) -> torch.Tensor:
        if self.k >= scores.shape[-1]:
            return scores
        kth = scores.topk(self.k, dim=-1).values[:, -1:]
        return scores.masked_fill(scores < kth, -float("inf"))


class MinP(LogitsProcessor):
    """Drop tokens whose probability (at `temperature`) is below `min_p` x the most likely token's."""

    def __init__(self, min_p: float, temperature: float = 1.0):
        if not 0 < min_p <= 1:
            raise ValueError(f"min_p must be in (0, 1], got {min_p}")
        self.min_p = min_p
        self.temperature = temperature if temperature > 0 else 1.0

    def __call__(self, input_ids: Any, scores: torch.Tensor) -> torch.Tensor:
        probs = (scores.float() / self.temperature).softmax(dim=-1)
        floor = self.min_p * probs.max(dim=-1, keepdim=True).values
        return scores.masked_fill(probs < floor, -float("inf"))
