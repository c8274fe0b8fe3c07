"""The one chat-template renderer: generation, training, verification and evaluation all use it.

Conversations are message lists (never `User:`/`Assistant:` strings). Rendering goes through the
tokenizer's own chat template, and encoding never adds special tokens a second time (a template that
already starts with BOS, tokenised with add_special_tokens=True, gives a double BOS).

`chat_template_kwargs` are extra variables for the template (e.g. `{"enable_thinking": False}` for
Qwen3, which otherwise opens every reply with a reasoning block): the same ones a server gets in its
request's `chat_template_kwargs`, so the hf backend and vLLM render the same prompt.

Note for the embedded SmolLM2: its template injects a default system prompt ("You are a helpful AI
assistant named SmolLM...") when a conversation has none, so "no system prompt" means that one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from character.records import Message, validate_messages


def render(
    tokenizer: Any,
    messages: list[Message],
    *,
    add_generation_prompt: bool,
    prefill: str | None = None,
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> str:
    """Render messages to text. `prefill` starts the assistant's reply (requires a generation prompt)."""
    validate_messages(messages)
    if prefill and not add_generation_prompt:
        raise ValueError("prefill needs add_generation_prompt=True")
    text = tokenizer.apply_chat_template(
        messages,
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
        **dict(chat_template_kwargs or {}),
    )
    if not isinstance(text, str):
        raise TypeError(f"chat template returned {type(text).__name__}, expected str")
    return text + (prefill or "")


def encode(
    tokenizer: Any,
    messages: list[Message],
    *,
    add_generation_prompt: bool,
    prefill: str | None = None,
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> list[int]:
    text = render(
        tokenizer,
        messages,
        add_generation_prompt=add_generation_prompt,
        prefill=prefill,
        chat_template_kwargs=chat_template_kwargs,
    )
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def count_tokens(tokenizer: Any, messages: list[Message], *, add_generation_prompt: bool = False) -> int:
    return len(encode(tokenizer, messages, add_generation_prompt=add_generation_prompt))
