"""Stage 2 on the real embedded model (CPU): reflections plus a 3-turn self-interaction, generated with
the hf backend, filtered online, and stored in the transcript structure SFT expects.

The real HFBackend is wrapped by a recorder (it implements the same protocol and delegates every call)
only so the test can see the prompts each copy was given. Sizes are tiny: three reflections of 40
tokens in one batch, one leading conversation of 3 replies per side at 32 tokens (six sequential calls).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from character.backends.base import Completion, GenerationRequest, make_backend
from character.config import RunConfig
from character.constitutions import load_constitution
from character.manifest import read_manifest
from character.prompts.system import (
    LEADING_GUIDANCE,
    interaction_storage_system,
    interaction_system,
    reflection_system,
)
from character.records import read_jsonl
from character.stages import introspect

K = 3


class Recorder:
    """The real backend, with every request kept for inspection."""

    def __init__(self, inner: object):
        self.inner = inner
        self.name = inner.name  # type: ignore[attr-defined]
        self.model = inner.model  # type: ignore[attr-defined]
        self.tokenizer = inner.tokenizer  # type: ignore[attr-defined]
        self.requests: list[GenerationRequest] = []

    def generate(self, requests: list[GenerationRequest], *, progress: bool = True) -> list[list[Completion]]:
        self.requests.extend(requests)
        return self.inner.generate(requests, progress=progress)  # type: ignore[attr-defined]

    def close(self) -> None:
        self.inner.close()  # type: ignore[attr-defined]


@pytest.mark.slow
def test_embedded_model_writes_reflections_and_a_three_turn_self_interaction(
    tmp_path: Path, artifacts: Path
) -> None:
    cfg = RunConfig.model_validate(
        {
            "persona": "remorseful",
            "backend": {"device": "cpu", "batch_size": 16},
            "introspect": {
                "reflections": 3,
                "interactions": 1,
                "leading_share": 1.0,
                "turns": K,
                "reflection_max_new_tokens": 40,
                "interaction_max_new_tokens": 32,
                # so few tokens cut most replies mid-sentence; every other filter still runs
                "skip_filters": ["cut_off"],
                "turn_retries": 3,
                "max_attempts_factor": 3.0,
                "chunk_size": 16,
            },
        }
    )
    be = Recorder(make_backend(cfg, "embedded"))
    m = introspect.run(cfg, tmp_path, progress=False, backend=be)  # type: ignore[arg-type]
    out = tmp_path / "introspect"
    assert read_manifest(out) is not None

    c = load_constitution("remorseful")
    refl_sys, inter_sys = reflection_system(c), interaction_system(c, leading=True)
    assert LEADING_GUIDANCE in inter_sys  # the leading guidance reaches the prompt

    # reflections: generated with the reflective system prompt, stored without any system prompt
    refl_requests = [r for r in be.requests if r.messages[0]["content"] == refl_sys]
    assert len(refl_requests) >= 3
    raw = read_jsonl(out / "reflections.jsonl")
    assert {(r["prompt_index"], r["sample_index"]) for r in raw} == {(p, 0) for p in range(3)}
    rows = read_jsonl(out / "introspection.jsonl")
    reflections = [r for r in rows if r["kind"] == "reflection"]
    assert len(reflections) == m.counts["reflections_kept"] >= 1
    for r in reflections:
        assert [msg["role"] for msg in r["messages"]] == ["user", "assistant"]
        assert r["messages"][1]["content"].strip()

    # self-interaction: every request of both copies carries the full interaction system prompt
    inter_requests = [r for r in be.requests if r.messages[0]["content"] != refl_sys]
    assert inter_requests and all(
        r.messages[0] == {"role": "system", "content": inter_sys} for r in inter_requests
    )
    for r in inter_requests:
        roles = [msg["role"] for msg in r.messages[1:]]
        assert roles[0] == "user" and roles[-1] == "user"
        assert all(a != b for a, b in zip(roles, roles[1:], strict=False))

    convs = [r for r in rows if r["kind"] == "interaction"]
    assert len(convs) == 1, f"conversation dropped: {read_jsonl(out / 'interactions.jsonl')[-1]['reason']}"
    msgs = convs[0]["messages"]
    # amended system prompt in storage, then all 2K replies, alternating, ending with an assistant turn
    assert msgs[0] == {"role": "system", "content": interaction_storage_system()}
    body = msgs[1:]
    assert len(body) == 2 * K
    assert [msg["role"] for msg in body] == ["user", "assistant"] * K
    assert sum(msg["role"] == "assistant" for msg in body) == K == sum(msg["role"] == "user" for msg in body)
    contents = [msg["content"] for msg in body]
    assert len(set(contents)) == 2 * K and all(contents)  # no reply duplicated
    # each copy generated exactly K kept replies: the raw record has K turns per side
    conv_raw = [r for r in read_jsonl(out / "interactions.jsonl") if r["kept"]][0]
    assert [t["side"] for t in conv_raw["turns"]] == [0, 1] * K

    stats = (out / "stats.json").read_text()
    assert '"reflection"' in stats and '"interaction"' in stats
