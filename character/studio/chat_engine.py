"""Streamed chat for the Studio: one checkpoint loaded in this process, replies token by token.

In: a checkpoint reference (`embedded`, a model or adapter path, a registry name) and a message list.
Out: text pieces as the model writes them (transformers' `TextIteratorStreamer`, generation on a
worker thread). The prompt goes through `character.chat.render`, the one chat renderer; the stop
strings are the backends' (`default_stops`: EOS and fake-turn markers), cut before they are shown.
There is no system prompt unless the caller passes one.

One model is kept loaded (the last one asked for); requests are served one at a time, which is what a
CPU can do anyway. Only local weights are loaded (nothing is downloaded).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from character.backends.base import cut_at_stop, default_stops
from character.errors import UsageError
from character.records import Message, validate_messages

log = logging.getLogger(__name__)


@dataclass
class ChatParams:
    max_new_tokens: int = 96
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int | None = None


class ChatEngine:
    def __init__(self, device: str = "auto"):
        self.device = device
        self._lock = threading.Lock()
        self._ref: str | None = None
        self._model: Any = None
        self._tok: Any = None

    @staticmethod
    def target(ref: str) -> Any:
        """The checkpoint `ref` names, if its weights are on this machine; else one clear error."""
        from pathlib import Path

        from character.eval.target import resolve_target

        target = resolve_target(ref)
        if not Path(target.model).exists():
            raise UsageError(
                f"checkpoint '{ref}' resolves to '{target.model}', which is not a local model or registry "
                "name: the Studio chats with local weights only (use `character chat` for served models)"
            )
        return target

    def _load(self, ref: str) -> tuple[Any, Any]:
        if ref == self._ref:
            return self._model, self._tok
        from character.models import load_model, load_tokenizer

        target = self.target(ref)
        log.info("studio chat: loading %s", target.label)
        self._model = self._tok = self._ref = None  # free the old model before loading the next
        model = load_model(target.model, self.device, adapter=target.adapter)
        tok = load_tokenizer(target.adapter or target.model)
        self._model, self._tok, self._ref = model, tok, ref
        return model, tok

    def stream(self, ref: str, messages: list[Message], params: ChatParams) -> Iterator[str]:
        """Yield the reply in pieces; the stop strings never appear in what is yielded."""
        validate_messages(messages, "the chat")
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        from character.chat import render

        with self._lock:
            model, tok = self._load(ref)
            prompt = render(tok, messages, add_generation_prompt=True)
            ids = tok(prompt, add_special_tokens=False, return_tensors="pt").to(model.device)
            streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True, timeout=600)
            halt = threading.Event()

            class Halt(StoppingCriteria):
                # Ends generation once the reader saw a stop string or the client went away.
                def __call__(self, input_ids: Any, scores: Any, **kw: Any) -> Any:
                    return torch.full((input_ids.shape[0],), halt.is_set(), dtype=torch.bool)

            sample = params.temperature > 0
            kwargs: dict[str, Any] = {
                **ids,
                "max_new_tokens": params.max_new_tokens,
                "do_sample": sample,
                "streamer": streamer,
                "stopping_criteria": StoppingCriteriaList([Halt()]),
                "pad_token_id": tok.pad_token_id,
            }
            if sample:
                kwargs.update(temperature=params.temperature, top_p=params.top_p)
            if params.seed is not None:
                torch.manual_seed(params.seed)
            errors: list[BaseException] = []

            def work() -> None:
                try:
                    with torch.no_grad():
                        model.generate(**kwargs)
                except BaseException as e:  # surfaced to the reader below
                    errors.append(e)
                    streamer.end()

            worker = threading.Thread(target=work, name="studio-chat", daemon=True)
            worker.start()
            stops = default_stops(eos=tok.eos_token)
            hold = max(len(s) for s in stops)
            text, sent = "", 0
            try:
                for piece in streamer:
                    text += piece
                    cut, stopped = cut_at_stop(text, stops)
                    if stopped:
                        if len(cut) > sent:
                            yield cut[sent:]
                        sent = len(cut)
                        break
                    # Hold back a tail that could be the start of a stop string.
                    safe = max(sent, len(text) - hold)
                    if safe > sent:
                        yield text[sent:safe]
                        sent = safe
                else:
                    if len(text) > sent:
                        yield text[sent:]
            finally:
                halt.set()
                worker.join()
            if errors:
                raise errors[0]
