"""Every conversation the eval samples draws its own random numbers.

With one seed for a whole prompt set every reply got the same uniform draws, and the hf backend's
inverse-CDF sampler then took the same quantile of each reply's distribution: 47 of 100 base replies
in a demo run opened with "A". The real hf backend and the tiny model answer here; the test reads the
seeds the requests carried and the replies that came back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from character.backends.base import GenerationRequest, SamplingParams
from character.config import RunConfig
from character.eval.target import Generator, Target, conversation, conversation_params

PROMPTS = [f"Tell me something about the number {i}." for i in range(24)]


class Recording:
    """Wraps the real hf backend and keeps the requests it was given."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.requests = inner, []

    def generate(self, reqs: list[GenerationRequest], *, progress: bool = True) -> Any:
        self.requests += reqs
        return self.inner.generate(reqs, progress=progress)

    def close(self) -> None:
        self.inner.close()


def test_each_conversation_gets_its_own_seed_and_the_same_one_on_every_model(tiny_model: Path) -> None:
    from character.backends.hf import HFBackend

    params = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=1, seed=1234)
    runs = []
    for _ in range(2):  # two models under test (here the same weights): paired draws per prompt
        rec = Recording(HFBackend(str(tiny_model), device="cpu", batch_size=24, threads=1))
        g = Generator(RunConfig(), Target(str(tiny_model), str(tiny_model)), backend=rec)
        replies = [o[0].text for o in g.generate([conversation(p) for p in PROMPTS], params, progress=False)]
        runs.append(([r.params.seed for r in rec.requests], replies))
        g.close()
    (seeds, replies), (seeds2, replies2) = runs
    assert len(set(seeds)) == len(PROMPTS) and seeds == seeds2
    assert replies == replies2
    # The same uniform for all 24 rows picks nearly one first token on a random model; own draws do not.
    assert len(set(replies)) >= 8
    unseeded = SamplingParams(seed=None)
    assert conversation_params(unseeded, conversation("hi"), None) is unseeded
    assert conversation_params(params, conversation("hi"), "I'm") != conversation_params(
        params, conversation("hi"), None
    )
