"""The generation protocol every backend implements.

A request is a conversation (message list) plus sampling parameters, an optional assistant prefill
and an optional adapter name; a result is the text (prefill not included, stop string not included),
the finish reason (`stop` or `length`) and token counts. Stop strings always include the fake-turn
markers below: without them small models write whole imaginary conversations (seed report 001).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from character.errors import ConfigError
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
    stopped_by: str | None = None
    """The stop string that ended the reply (None for EOS or max tokens). A fake-turn marker here means
    the model began the next turn itself: the filters count it as `hallucinated_turn` (see
    `character.backends.stops` for the rule every backend follows)."""


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


def make_backend(
    cfg: RunConfig, model: str, *, adapters: dict[str, str] | None = None, role: str | None = None
) -> Backend:
    """Build the engine `role` runs on (`roles.<role>` over `[backend]`; None: `[backend]`) for `model`."""
    from character.backends.roles import backend_for, config_for

    b = backend_for(cfg, role)
    if b.kind == "hf":
        from character.backends import lifecycle
        from character.backends.hf import HFBackend

        if lifecycle.on_cuda(b.device):
            lifecycle.claim_gpus(role or "hf", list(b.gpus))
        return HFBackend(
            model,
            device=b.device,
            batch_size=b.batch_size,
            adapters=adapters,
            dtype=b.dtype,
            cache=b.cache,
            threads=b.cpu_threads,
            chat_template_kwargs=b.chat_template_kwargs,
        )
    if b.kind == "openai":
        from character.backends.openai import OpenAIBackend

        # A remote endpoint serves adapters under their names (e.g. vLLM --lora-modules); we only
        # need the names to route requests, the paths live on the server.
        served = served_name(b.model, model, role, b.base_url)
        return OpenAIBackend.from_config(config_for(cfg, role), served, adapters=list(adapters or {}))
    if b.kind == "vllm":
        from character.backends.vllm import ManagedVLLM

        return ManagedVLLM.from_config(cfg, model, adapters=adapters, role=role)
    raise ValueError(b.kind)


def served_name(override: str, model: str, role: str | None, base_url: str) -> str:
    """The model name an OpenAI-compatible endpoint gets: the role's `model` override, else the
    reference itself, never a local path (a remote server cannot open this machine's files, and
    sending `dpo/merged`'s path is how introspection used to fail against a hosted endpoint)."""
    if override:
        return override
    if model.startswith(("/", "./", "../", "~")) or Path(model).expanduser().exists():
        key = f"roles.{role}" if role else "backend"
        raise ConfigError(
            f"{key}.kind = 'openai' but the {role or 'requested'} model is the local path {model!r}, which "
            f"the endpoint {base_url} cannot load; serve it there and set {key}.model to the name it is "
            f"served under, or run this role on {key}.kind = 'hf' or 'vllm'"
        )
    return model
