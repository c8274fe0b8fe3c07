"""What each kind of OpenAI-compatible endpoint accepts, and how an unsupported knob is handled.

A knob an endpoint does not take is dropped from the request with one warning per backend, never
silently: a repetition penalty the run relies on that quietly does nothing changes the data (a knob at
its neutral value, e.g. top_k off, is simply not sent there: dropping it changes nothing). Sources:
vLLM's ChatCompletionRequest (top_k, min_p, repetition_penalty, n, seed, chat_template_kwargs and
continue_final_message supported), OpenAI's API (none of the non-OpenAI knobs, at most 4 stop
strings), Ollama's OpenAI-compatible field list (no repetition_penalty, top_k, min_p or n), and
`transformers serve` 5.23 as read in its source and measured here (HTTP 422 on top_k, min_p and
repetition_penalty, `n` ignored, `frequency_penalty` mapped onto a repetition penalty of 1 + value, but
a `generation_config` JSON field that carries any generation knob, and `chat_template_kwargs`).

An endpoint of unknown kind ("generic") is sent everything; when it rejects a field by name
(HTTP 400/422 "unexpected/unsupported/unrecognized ... 'field'"), the field is learned as unsupported,
warned about and dropped for the rest of the run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import urlparse

Provider = Literal["auto", "vllm", "openai", "ollama", "transformers", "generic"]


@dataclass(frozen=True)
class Capabilities:
    repetition_penalty: bool = True
    frequency_penalty: bool = True
    top_k: bool = True
    min_p: bool = True
    seed: bool = True
    n: bool = True
    """Several choices per request; without it the backend sends one request per sample."""
    prefill: bool = False
    """Continue a final assistant message (vLLM's continue_final_message)."""
    max_stops: int | None = None
    """Most stop strings the endpoint takes; the rest are still cut client-side."""
    chat_template_kwargs: bool = True
    """Extra chat-template variables (e.g. enable_thinking) in the request."""
    generation_config: bool = False
    """A `generation_config` JSON field for knobs it has no field of its own for (`transformers serve`)."""


_NO_EXTRAS = {"repetition_penalty": False, "top_k": False, "min_p": False, "chat_template_kwargs": False}
CAPABILITIES: dict[str, Capabilities] = {
    "vllm": Capabilities(prefill=True),
    "openai": Capabilities(**_NO_EXTRAS, max_stops=4),
    "ollama": Capabilities(**_NO_EXTRAS, n=False),
    # frequency_penalty there is 1 + value as a repetition penalty: another knob under the same name.
    "transformers": Capabilities(
        repetition_penalty=False,
        top_k=False,
        min_p=False,
        frequency_penalty=False,
        n=False,
        generation_config=True,
    ),
    "generic": Capabilities(),
}

# Optional request fields the backend may drop when an endpoint rejects them by name.
OPTIONAL_FIELDS = (
    "repetition_penalty",
    "frequency_penalty",
    "top_k",
    "min_p",
    "seed",
    "n",
    "chat_template_kwargs",
    "generation_config",
)
_REJECTED = re.compile(
    r"(unexpected|unsupported|unrecognized|unknown|extra|not permitted|not allowed)[^'\"]{0,60}['\"]?"
    r"\{?['\"]?([a-z_]+)['\"]?",
    re.IGNORECASE,
)


def detect_provider(base_url: str, configured: Provider = "auto") -> str:
    """The configured provider, or a guess from the URL (hosted OpenAI, Ollama's port); else generic."""
    if configured != "auto":
        return configured
    u = urlparse(base_url)
    host = (u.hostname or "").lower()
    if host.endswith("openai.com"):
        return "openai"
    if u.port == 11434:
        return "ollama"
    return "generic"


def capabilities_for(provider: str) -> Capabilities:
    return CAPABILITIES.get(provider, CAPABILITIES["generic"])


def rejected_field(body: str, sent: set[str]) -> str | None:
    """Name of an optional field the endpoint's 4xx body says it does not accept, if any."""
    for m in _REJECTED.finditer(body):
        name = m.group(2)
        if name in sent and name in OPTIONAL_FIELDS:
            return name
    for name in sent:
        if name in OPTIONAL_FIELDS and re.search(rf"['\"]{name}['\"]", body) and _REJECTED.search(body):
            return name
    return None


def without(caps: Capabilities, field: str) -> Capabilities:
    return replace(caps, **{field: False})


def can_prefill(backend: Any) -> bool:
    """Whether `backend` can continue a prefilled assistant reply. In-process engines always can; an
    endpoint says so through its capability map (`OpenAIBackend.can_prefill`, which may ask the server
    what it is first). A backend that predates the question is assumed able."""
    probe = getattr(backend, "can_prefill", None)
    return bool(probe()) if callable(probe) else True
