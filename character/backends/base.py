"""The generation protocol every backend implements.

A request is a conversation (message list) plus sampling parameters, an optional assistant prefill
and an optional adapter name; a result is the text (prefill not included, stop string not included),
the finish reason (`stop` or `length`) and token counts. Stop strings always include the fake-turn
markers below: without them small models write whole imaginary conversations (seed report 001).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from character.records import Message

if TYPE_CHECKING:
    from character.config import RunConfig

FAKE_TURN_STOPS = ("\nUser:", "\nAssistant:", "\n\nUser:", "\n\nAssistant:")


@dataclass
class SamplingParams:
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 256
    stop: list[str] = field(default_factory=list)
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    n: int = 1
    seed: int | None = None
    top_k: int = 0
    """Keep only the k most likely tokens (0 or -1: off)."""
    min_p: float = 0.0
    """Drop tokens below min_p x the top token's probability (0: off)."""


@dataclass
class GenerationRequest:
    messages: list[Message]
    params: SamplingParams = field(default_factory=SamplingParams)
    prefill: str | None = None
    adapter: str | None = None


@dataclass
class Completion:
    text: str
    finish_reason: Literal["stop", "length"]
    prompt_tokens: int
    completion_tokens: int


class Backend(Protocol):
    """Generate completions for a batch of requests; one list of `n` completions per request."""

    name: str
    model: str

    def generate(
        self, requests: list[GenerationRequest], *, progress: bool = True
    ) -> list[list[Completion]]: ...

    def close(self) -> None: ...


def default_stops(extra: list[str] | None = None, eos: str | None = None) -> list[str]:
    stops = list(FAKE_TURN_STOPS)
    if eos:
        stops.append(eos)
    for s in extra or []:
        if s and s not in stops:
            stops.append(s)
    return stops


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """Cut `text` at the earliest stop string. Returns (text, whether a stop was found)."""
    cut = len(text)
    for s in stops:
        i = text.find(s)
        if i != -1 and i < cut:
            cut = i
    return text[:cut], cut < len(text)


def make_backend(cfg: RunConfig, model: str, *, adapters: dict[str, str] | None = None) -> Backend:
    """Build the backend the config names for `model` (a model reference)."""
    kind = cfg.backend.kind
    if kind == "hf":
        from character.backends.hf import HFBackend

        return HFBackend(
            model,
            device=cfg.backend.device,
            batch_size=cfg.backend.batch_size,
            adapters=adapters,
            dtype=cfg.backend.dtype,
            cache=cfg.backend.cache,
            threads=cfg.backend.cpu_threads,
        )
    if kind == "openai":
        from character.backends.openai import OpenAIBackend

        # A remote endpoint serves adapters under their names (e.g. vLLM --lora-modules); we only
        # need the names to route requests, the paths live on the server.
        return OpenAIBackend.from_config(cfg, model, adapters=list(adapters or {}))
    if kind == "vllm":
        from character.backends.vllm import ManagedVLLM

        return ManagedVLLM.from_config(cfg, model, adapters=adapters)
    raise ValueError(kind)
