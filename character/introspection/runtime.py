"""Run-time plumbing of the introspection stage: the online filter call, sampler seeding, token counting
for the context budget, token charging, and the fingerprint a resumed run must match."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import sys
from pathlib import Path
from typing import Any

from character.atomic import atomic_write_json
from character.backends.base import Backend, Completion
from character.chat import count_tokens
from character.config import RunConfig
from character.cost import CostTracker
from character.errors import ConfigError
from character.introspection.interaction import FilterFn
from character.prompts import greetings
from character.prompts.reflection import REFLECTION_PROMPTS
from character.records import Message

log = logging.getLogger(__name__)


def make_filter(kind: str, cfg: RunConfig) -> FilterFn:
    """The shared online filters for one kind, with this run's names and skipped reasons."""
    from character.filters import FilterContext, check

    names = tuple(n for n in (cfg.models.student_name,) if n)
    skip = frozenset(cfg.introspect.skip_filters)
    try:
        FilterContext(kind=kind, skip=skip)
    except ConfigError as e:
        raise ConfigError(f"introspect.skip_filters = {sorted(skip)}: {e}") from e

    def run(
        text: str, comp: Completion, prompt: str, system: str
    ) -> tuple[bool, str | None, str, str, str | None]:
        ctx = FilterContext(
            kind=kind,
            prompt=prompt,
            system_prompt=system,
            finish_reason=comp.finish_reason,
            stopped_by=comp.stopped_by,
            identity_names=names,
            skip=skip,
            language=cfg.filters.language,
            cut_off=cfg.filters.cut_off,
        )
        v = check(text, ctx)
        return v.keep, (None if v.keep else (v.reason or "filtered")), v.text, v.detail, v.repair

    return run


def reseed(seed: int, *parts: object) -> None:
    """Seed the in-process sampler for the next call, from the run seed and how much exists on disk.

    Per-request seeds would split the hf backend's batches (it groups by seed), and one fixed seed per
    call would replay the same samples for the same prompt in every batch and after every resume
    (reflections repeat ten prompts), so the global generator is reseeded per chunk instead.
    """
    h = int(hashlib.sha256(":".join(map(str, (seed, *parts))).encode()).hexdigest()[:8], 16)
    random.seed(h)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(h)


class TokenCounter:
    """Token counting for the context budget: the backend's tokenizer, else a rough 3.5 chars/token."""

    def __init__(self, backend: Backend, model: str):
        self.tok = getattr(backend, "tokenizer", None)
        if self.tok is None:
            try:
                from character.models import load_tokenizer

                self.tok = load_tokenizer(model)
            except Exception as e:  # a remote-only model: no local tokenizer
                log.warning(
                    "no tokenizer for %s (%s): estimating context length at 3.5 chars/token", model, e
                )

    def __call__(self, messages: list[Message]) -> int:
        if self.tok is not None:
            return count_tokens(self.tok, messages, add_generation_prompt=True)
        return math.ceil(sum(len(m["content"]) + 8 for m in messages) / 3.5)


class ChunkTokens:
    """Tokens of one chunk, charged to the tracker only after the chunk is on disk."""

    def __init__(self, tracker: CostTracker, stage: str, model: str):
        self.tracker, self.stage, self.model = tracker, stage, model
        self.prompt = self.completion = 0

    def charge(self, completions: list[Completion]) -> None:
        p = sum(c.prompt_tokens for c in completions)
        c = sum(c.completion_tokens for c in completions)
        self.prompt += p
        self.completion += c
        self.tracker.record(self.stage, self.model, p, c, role="introspect")


def fingerprint(cfg: RunConfig, model: str, adapter: str | None, systems: dict[str, str]) -> dict[str, Any]:
    """What made the data on disk: a resumed run must match it (sizes may change, the rest not)."""
    s = cfg.introspect
    blob = json.dumps(
        [list(REFLECTION_PROMPTS), list(greetings.FREE_GREETINGS), list(greetings.LEADING_GREETINGS)]
    )
    return {
        "persona": cfg.persona,
        "model": model,
        "adapter": adapter,
        "systems_sha": hashlib.sha256(json.dumps(systems, sort_keys=True).encode()).hexdigest()[:16],
        "prompts_sha": hashlib.sha256(blob.encode()).hexdigest()[:16],
        "turns": s.turns,
        "temperature": s.temperature,
        "top_p": s.top_p,
        "repetition_penalty": s.repetition_penalty,
        "reflection_max_new_tokens": s.reflection_max_new_tokens,
        "interaction_max_new_tokens": s.interaction_max_new_tokens,
        "strip_think_reflection": s.strip_think_reflection,
        "keep_think_interaction": s.keep_think_interaction,
        "voice_markers": s.voice_markers,
        "strip_openers": s.strip_openers,
    }


# Keys added to the fingerprint after runs were written, with the value those runs had: resuming such a
# run with the same settings is not a change.
_LEGACY = {"voice_markers": 0, "strip_openers": False}


def check_fingerprint(path: Path, now: dict[str, Any], has_data: bool) -> None:
    if path.exists() and has_data:
        old = json.loads(path.read_text())
        was = {k: old.get(k, _LEGACY.get(k)) for k in now}
        diff = [k for k in now if was[k] != now[k]]
        if diff:
            changes = ", ".join(f"{k}: {was[k]!r} -> {now[k]!r}" for k in diff)
            raise ConfigError(
                f"{path.parent} holds introspection data made with different settings ({changes}); "
                "resume with the old settings, or move the introspect/ folder aside to start over"
            )
    atomic_write_json(path, now)
