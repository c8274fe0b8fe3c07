"""pairs = prompts x K with unique prompts: a constitution short of questions is expanded by the teacher
first, or refused with the command to run, or (explicitly) cycled.

The teacher is an OpenAI-compatible server on loopback (the fake at the process boundary from
test_backend_sampling_fidelity) that continues the numbered list it is prefilled with; the expansion,
the supply check and the prompt pool are the real ones."""

from __future__ import annotations

import logging
import random
import re
from pathlib import Path
from typing import Any

import pytest

from character.config import RunConfig
from character.constitutions import load_constitution
from character.errors import UsageError
from character.prompts import bank
from character.prompts.supply import ensure_persona_supply, persona_need, pool_size
from character.prompts.traits import TRAITS
from tests.unit.test_backend_sampling_fidelity import ChatServer


def _cfg(**distill: Any) -> RunConfig:
    cfg = RunConfig()
    for k, v in {
        "pairs": 200,
        "k": 2,
        "max_attempts_factor": 1.0,
        "persona_prompt_share": 0.8,
        **distill,
    }.items():
        setattr(cfg.distill, k, v)
    return cfg


def _continue_list(body: dict[str, Any]) -> str:
    """Continue the prefilled numbered list with eight fresh questions of random words."""
    prefill = body["messages"][-1]["content"]
    first = int(re.search(r"(\d+)\.$", prefill).group(1))  # type: ignore[union-attr]
    rng = random.Random(prefill)
    items = [" ".join(rng.sample(TRAITS, 7)).capitalize() + "?" for _ in range(8)]
    return " " + items[0] + "".join(f"\n{first + i}. {q}" for i, q in enumerate(items[1:], 1))


def test_refuse_names_the_command(artifacts: Path) -> None:
    cfg = _cfg(prompt_shortfall="refuse")
    c = load_constitution("remorseful")
    assert persona_need(cfg) == 80 > len(bank.persona_prompts(c))
    with pytest.raises(
        UsageError,
        match=r"needs 80 unique .* run `character generate prompts --persona remorseful --per-trait \d+`",
    ):
        ensure_persona_supply(cfg, c, progress=False)


def test_cycle_warns_how_often_each_question_is_asked(
    artifacts: Path, caplog: pytest.LogCaptureFixture
) -> None:
    c = load_constitution("remorseful")
    with caplog.at_level(logging.WARNING):
        sup = ensure_persona_supply(_cfg(), c, progress=False)
    assert sup.short > 0 and "asked about 2.3 times" in caplog.text


def test_expand_writes_enough_unique_questions_and_the_pool_never_repeats(artifacts: Path) -> None:
    server = ChatServer(owner="vllm", reply=_continue_list)
    try:
        cfg = _cfg(prompt_shortfall="expand")
        cfg.backend.kind = "openai"
        cfg.backend.base_url = server.url
        cfg.models.teacher = "m"
        c = load_constitution("remorseful")
        before = len(bank.persona_prompts(c))
        sup = ensure_persona_supply(cfg, c, progress=False)
        assert sup.expanded > 0 and sup.available >= sup.needed == 80 > before
        assert bank.expanded_path(c.name).exists()
        # The teacher was asked to continue lists (prefilled), never for anything else.
        assert all(b.get("continue_final_message") for b in server.chat_bodies())
        pool = bank.dpo_prompt_pool(c, pool_size(cfg), cfg.seed, cfg.distill.persona_prompt_share)
        persona = [p for p in pool if p.source == "persona"]
        assert len(persona) == 80 and not any("~r" in p.id for p in pool)
        assert len({p.text for p in persona}) == 80
        # Already enough: a second call writes nothing.
        assert ensure_persona_supply(cfg, c, progress=False).expanded == 0
    finally:
        server.close()


def _plain_list(body: dict[str, Any]) -> str:
    """An endpoint that cannot be prefilled: repeats the list it was shown, then continues it."""
    user = body["messages"][-1]["content"]
    first = int(re.search(r"Continue the list from (\d+)\.", user).group(1))  # type: ignore[union-attr]
    shown = re.findall(r"(?m)^\d+\. .*$", user)
    rng = random.Random(user)
    new = [f"{first + i}. " + " ".join(rng.sample(TRAITS, 7)).capitalize() + "?" for i in range(6)]
    return "<think>Let me continue.</think>\n" + "\n".join(shown + new)


def test_expansion_on_an_endpoint_without_prefill_asks_plainly(artifacts: Path) -> None:
    from character.backends.openai import OpenAIBackend
    from character.prompts.expand import expand_constitution

    server = ChatServer(owner="someone", reply=_plain_list)
    try:
        c = load_constitution("remorseful")
        b = OpenAIBackend("m", base_url=server.url, timeout_s=5)
        res = expand_constitution(c, b, artifacts / "exp.jsonl", per_trait=8, progress=False, traits=[0, 1])
        assert res.complete and res.added == 6  # 5 hand-written + 3 new for each of two traits
        assert res.dropped.get("duplicate", 0) == 0  # the repeated examples are not counted as new
        bodies = server.chat_bodies()
        assert bodies and not any("continue_final_message" in x for x in bodies)
        assert all(x["messages"][-1]["role"] == "user" for x in bodies)
    finally:
        server.close()
