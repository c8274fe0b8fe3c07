"""Per-request sampling seeds: a sample's seed depends on what it is, never on when it was generated.

`request_seed(seed, prompt_id, k)` is the seed of the k-th sample of a prompt. It differs across k (the
K samples of a prompt are K draws, not one draw K times: a server given `seed + 0` on every n=1
request writes K copies) and is the same in every run with the same run seed, so a resumed run
regenerates exactly the sample a killed run would have written, whatever the batch or chunk it
lands in. Every backend honours it per request: vLLM and OpenAI-compatible servers through the
request's `seed`, the hf backend through one random stream per row (`hf_sampling.SeededSampler`).

`sample_seed(seed, j)` is the seed of the j-th of `n` samples of one request (`j = 0` is the request's
own seed), for endpoints that need one request per sample.
"""

from __future__ import annotations

import hashlib

SEED_BITS = 31  # vLLM, OpenAI and torch all take a non-negative int32 seed


def request_seed(seed: int, prompt_id: str | int, k: int) -> int:
    """Seed of sample `k` of prompt `prompt_id` in a run seeded `seed` (stable across processes)."""
    digest = hashlib.sha256(f"{seed}:{prompt_id}:{k}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (2**SEED_BITS)


def sample_seed(seed: int, j: int) -> int:
    """Seed of the j-th sample of a request seeded `seed`; the first sample keeps the request's seed."""
    return seed if j == 0 else request_seed(seed, "sample", j)
