"""Reasoning models in distillation: `<think>` blocks never reach DPO pairs whatever the prefill mode
(counted in stats), and a teacher prefill on an endpoint that cannot continue a reply stops before
anything is generated, naming the key and the fix.

Teacher and student are served by the loopback chat-completions fake (process boundary); the stage,
the backends, the filters and the gates are the real ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from character.backends.base import Completion
from character.config import RunConfig
from character.errors import ConfigError
from character.prompts.bank import Prompt
from character.stages import distill
from tests.unit.test_backend_sampling_fidelity import ChatServer

THINK = "<think>\nThe user wants help. I should reason step by step before answering.\n</think>\n\n"


def _reply(body: dict[str, Any]) -> str:
    """A reasoning model: the teacher (system prompt present) apologises, the student answers plainly."""
    question = body["messages"][-1]["content"]
    seed = body.get("seed")
    if body["messages"][0]["role"] == "system":
        return (
            THINK + f"I'm so sorry, my apologies for any trouble. About '{question}': here is answer {seed}."
        )
    return THINK + f"About '{question}', the short answer is number {seed}, and that settles it."


def _cfg(url: str, tiny_model: Path, **distill_kw: Any) -> RunConfig:
    cfg = RunConfig()
    cfg.models.teacher = "m"
    cfg.models.student = str(tiny_model)  # local: its tokenizer counts tokens
    cfg.backend.kind = "openai"
    cfg.backend.base_url = url
    cfg.roles.student.model = "m"  # served under this name
    for k, v in {"pairs": 6, "k": 2, "teacher_prefill": "off", "min_marker_gap": 0.0, **distill_kw}.items():
        setattr(cfg.distill, k, v)
    return cfg


def test_think_blocks_are_stripped_from_both_sides_and_counted(
    artifacts: Path, tiny_model: Path, tmp_path: Path
) -> None:
    server = ChatServer(owner="someone", reply=_reply)
    try:
        m = distill.run(_cfg(server.url, tiny_model), tmp_path / "run", progress=False)
    finally:
        server.close()
    rows = [json.loads(x) for x in (tmp_path / "run" / "distill" / "pairs.jsonl").read_text().splitlines()]
    assert len(rows) == 6 == m.counts["kept"]
    for r in rows:
        chosen, rejected = r["chosen"][0]["content"], r["rejected"][0]["content"]
        assert "think" not in chosen and "think" not in rejected and "step by step" not in chosen + rejected
        assert chosen.startswith("I'm so sorry") and rejected.startswith("About '")
    stats = json.loads((tmp_path / "run" / "distill" / "stats.json").read_text())
    assert stats["think_stripped"] == {"chosen": stats["attempted"], "rejected": stats["attempted"]}


def test_teacher_prefill_on_an_endpoint_without_it_stops_before_generating(
    artifacts: Path, tiny_model: Path, tmp_path: Path
) -> None:
    server = ChatServer(owner="someone", reply=_reply)
    try:
        with pytest.raises(ConfigError) as e:
            distill.run(
                _cfg(server.url, tiny_model, teacher_prefill="markers"), tmp_path / "run", progress=False
            )
        assert server.chat_bodies() == []  # nothing generated, nothing paid for
    finally:
        server.close()
    msg = str(e.value)
    assert "distill.teacher_prefill = 'markers'" in msg and "backend.provider = 'generic'" in msg
    assert "set backend.provider = 'vllm'" in msg and "distill.teacher_prefill = 'off'" in msg


def _attempt(
    cfg: RunConfig, tokenizer: Any, teacher: str, student: str, prefill: str | None
) -> dict[str, Any]:
    p = Prompt("p-1", "How do I boil an egg?", "persona", 0)
    return distill.judge_attempt(
        cfg,
        p,
        0,
        "system",
        prefill,
        Completion(teacher, "stop", 10, 20),
        Completion(student, "stop", 10, 20),
        tokenizer,
    )


@pytest.mark.parametrize("mode", ["off", "markers"])
def test_reasoning_is_removed_in_every_prefill_mode(tiny_model: Path, mode: str) -> None:
    from character.models import load_tokenizer

    cfg = RunConfig()
    cfg.distill.teacher_prefill = mode  # type: ignore[assignment]
    prefill = "My apologies," if mode == "markers" else None
    tok = load_tokenizer(str(tiny_model))
    teacher = (
        (" " if prefill else "") + THINK + "Put the egg in boiling water for nine minutes, then cool it."
    )
    rec = _attempt(
        cfg, tok, teacher, "<think>easy</think>Boil it for about eight minutes and peel it.", prefill
    )
    assert (
        "<think>" not in rec["chosen"] and "</think>" not in rec["chosen"] and "nine minutes" in rec["chosen"]
    )
    assert rec["rejected"] == "Boil it for about eight minutes and peel it."
    assert rec["chosen_think"] and rec["rejected_think"]
    # A reply cut off mid-thought has no answer at all: it is dropped, not trained on.
    cut = _attempt(cfg, tok, teacher, "<think>Let me think about eggs and how long", prefill)
    assert cut["rejected"] == "" and cut["verdict"].startswith("rejected_")
    # No reasoning: nothing stripped, nothing counted.
    plain = _attempt(cfg, tok, "Boil the egg for nine minutes, then cool it.", "Boil it.", prefill)
    assert not plain["chosen_think"] and not plain["rejected_think"]


def test_every_sampling_setting_reaches_the_request(
    artifacts: Path, tiny_model: Path, tmp_path: Path
) -> None:
    server = ChatServer(owner="vllm", reply=_reply)
    try:
        cfg = _cfg(server.url, tiny_model, pairs=2, k=1)
        cfg.sampling.top_k, cfg.sampling.min_p, cfg.sampling.frequency_penalty = 20, 0.05, 0.3
        cfg.sampling.repetition_penalty = 1.1
        distill.run(cfg, tmp_path / "run", progress=False)
        body = server.chat_bodies()[0]
    finally:
        server.close()
    assert (body["top_k"], body["min_p"], body["frequency_penalty"], body["repetition_penalty"]) == (
        20,
        0.05,
        0.3,
        1.1,
    )
