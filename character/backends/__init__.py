"""Generation backends behind one protocol: `hf` (transformers), `openai` (any OpenAI-compatible
server), `vllm` (a managed `vllm serve` process reached through the openai backend)."""

from character.backends.base import (
    Backend,
    Completion,
    GenerationRequest,
    SamplingParams,
    default_stops,
    make_backend,
)

__all__ = ["Backend", "Completion", "GenerationRequest", "SamplingParams", "default_stops", "make_backend"]
