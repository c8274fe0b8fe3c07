"""The sampling part of a chat-completions request: which knobs go where, for each kind of endpoint.

In: the request's `SamplingParams`, the endpoint's `Capabilities`, and the run's policy
(`sampling.generation_config`). Out: the top-level fields of the request body and, for an endpoint
that takes them only that way (`transformers serve`), the entries of its `generation_config` JSON.

Why every knob is sent (`explicit`, the default): vLLM fills each knob a request leaves out from the
model's `generation_config.json` (Qwen3 ships top_k 20 and temperature 0.6, Llama top_p 0.9), and
`transformers serve` does the same (top_k 50 when the model says nothing). A run that leaves top_k out
therefore samples one way on the hf backend (top_k off) and another on a server. So temperature,
top_p, top_k (-1 = off), min_p, repetition_penalty, frequency_penalty and max_tokens always travel,
at their neutral values too. `vllm` sends a knob only when it is set away from neutral, so the server
fills the rest from the model's generation config (vLLM's `--generation-config auto`): the model
maker's recommended sampling, at the price of hf and servers no longer sampling alike.

An endpoint without a knob (see `capabilities.py`) never receives it: a knob set away from neutral is
dropped with one warning (the caller's `warn`), a neutral one silently (leaving it out changes
nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from character.backends.base import SamplingParams
from character.backends.capabilities import Capabilities

GenerationConfigPolicy = Literal["explicit", "vllm"]
Warn = Callable[[str, str], None]


def _knobs(p: SamplingParams) -> dict[str, tuple[Any, bool, Any]]:
    """knob -> (value on the wire, whether it is neutral, value in a transformers GenerationConfig).

    vLLM and transformers disagree on "off" for top_k (-1 vs 0); a GenerationConfig has no frequency
    penalty at all (None: cannot be carried there)."""
    top_k_on = p.top_k > 0
    return {
        "top_k": (p.top_k if top_k_on else -1, not top_k_on, p.top_k if top_k_on else 0),
        "min_p": (p.min_p, p.min_p == 0, p.min_p),
        "repetition_penalty": (p.repetition_penalty, p.repetition_penalty == 1.0, p.repetition_penalty),
        "frequency_penalty": (p.frequency_penalty, p.frequency_penalty == 0, None),
    }


def sampling_fields(
    p: SamplingParams, caps: Capabilities, policy: GenerationConfigPolicy, warn: Warn
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(top-level body fields, generation_config entries) for one request's sampling settings."""
    fields: dict[str, Any] = {
        "max_tokens": p.max_new_tokens,
        "temperature": p.temperature,
        "top_p": p.top_p,
    }
    gen: dict[str, Any] = {}
    for name, (wire, neutral, hf_value) in _knobs(p).items():
        if neutral and policy == "vllm":
            continue  # the server fills it from the model's generation_config
        if getattr(caps, name):
            fields[name] = wire
        elif caps.generation_config and hf_value is not None:
            gen[name] = hf_value
        elif not neutral:
            warn(name, f"not supported; asked for {wire}")
    if gen:
        # A generation_config replaces the model's own sampling switch: say whether to sample.
        gen["do_sample"] = p.temperature > 0
    return fields, gen
