"""The `hf` backend: batched transformers generation in this process.

Prompts are rendered with the shared chat renderer, sorted by length (less padding), left-padded and
generated in batches with the KV cache. Stop strings end a sequence early and are cut from the text.
PEFT adapters are loaded on the base model by name and switched per request group.
CUDA runs in bf16, CPU in fp32.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any

from character.backends.base import Completion, GenerationRequest, cut_at_stop, default_stops
from character.chat import encode
from character.models import load_model, load_tokenizer, resolve_model
from character.progress import progress_bar

log = logging.getLogger(__name__)


class HFBackend:
    name = "hf"

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        batch_size: int = 16,
        adapters: dict[str, str] | None = None,
        model_obj: Any = None,
        tokenizer: Any = None,
    ):
        self.model = model
        self.batch_size = batch_size
        self.tokenizer = tokenizer or load_tokenizer(model)
        self.tokenizer.padding_side = "left"
        self.lm = model_obj if model_obj is not None else load_model(model, device)
        self.adapters: list[str] = []
        for name, path in (adapters or {}).items():
            self.load_adapter(name, path)
        self.tokens = {"prompt": 0, "completion": 0}
        self.last_tokens_per_s = 0.0

    @property
    def device(self) -> Any:
        return next(self.lm.parameters()).device

    def load_adapter(self, name: str, path: str) -> None:
        from peft import PeftModel

        path = resolve_model(path)
        if not isinstance(self.lm, PeftModel):
            self.lm = PeftModel.from_pretrained(self.lm, path, adapter_name=name, is_trainable=False)
        else:
            self.lm.load_adapter(path, adapter_name=name, is_trainable=False)
        self.lm.eval()
        self.adapters.append(name)

    def generate(self, requests: list[GenerationRequest], *, progress: bool = True) -> list[list[Completion]]:
        results: list[list[Completion]] = [[] for _ in requests]
        # Group by (adapter, sampling params): one generate() call needs one setting for both.
        groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        for i, r in enumerate(requests):
            p = r.params
            key = (
                r.adapter,
                p.temperature,
                p.top_p,
                p.max_new_tokens,
                tuple(p.stop),
                p.repetition_penalty,
                p.seed,
            )
            groups[key].extend([i] * p.n)
        total = sum(len(v) for v in groups.values())
        generated = 0
        t0 = time.perf_counter()
        with progress_bar("generating", total=total, enabled=progress) as bar:
            for _key, idxs in groups.items():
                encoded = {
                    i: encode(
                        self.tokenizer,
                        requests[i].messages,
                        add_generation_prompt=True,
                        prefill=requests[i].prefill,
                    )
                    for i in set(idxs)
                }
                order = sorted(idxs, key=lambda i: len(encoded[i]))
                for start in range(0, len(order), self.batch_size):
                    batch = order[start : start + self.batch_size]
                    outs = self._generate_batch([encoded[i] for i in batch], requests[batch[0]])
                    for i, c in zip(batch, outs, strict=True):
                        results[i].append(c)
                        generated += c.completion_tokens
                    elapsed = max(time.perf_counter() - t0, 1e-6)
                    self.last_tokens_per_s = generated / elapsed
                    bar.advance(len(batch), tok_s=self.last_tokens_per_s)
        return results

    def _generate_batch(self, prompts: list[list[int]], req: GenerationRequest) -> list[Completion]:
        import torch

        p = req.params
        tok = self.tokenizer
        stops = default_stops(p.stop, tok.eos_token)
        width = max(len(x) for x in prompts)
        pad = tok.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in prompts], device=self.device)
        attention = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in prompts], device=self.device)
        if p.seed is not None:
            torch.manual_seed(p.seed)
        if req.adapter is not None:
            self.lm.set_adapter(req.adapter)
        sampling = p.temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": p.max_new_tokens,
            "do_sample": sampling,
            "pad_token_id": pad,
            "eos_token_id": tok.eos_token_id,
            "repetition_penalty": p.repetition_penalty,
            "stop_strings": [s for s in stops if s != tok.eos_token],
            "tokenizer": tok,
        }
        if sampling:
            kwargs.update(temperature=p.temperature, top_p=p.top_p, top_k=0)
        ctx = self.lm.disable_adapter() if (req.adapter is None and self.adapters) else _null()
        with torch.inference_mode(), ctx:
            out = self.lm.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
        completions = []
        for row, prompt in zip(out[:, width:].tolist(), prompts, strict=True):
            # Everything from the first EOS on (EOS itself, then pads) is not part of the reply.
            ended_eos = tok.eos_token_id in row
            if ended_eos:
                row = row[: row.index(tok.eos_token_id) + 1]
            n_tokens = len(row)
            text = tok.decode(row, skip_special_tokens=False)
            text, stopped = cut_at_stop(text, stops)
            finish = "stop" if (stopped or ended_eos or n_tokens < p.max_new_tokens) else "length"
            completions.append(Completion(text.strip(), finish, len(prompt), n_tokens))
            self.tokens["prompt"] += len(prompt)
            self.tokens["completion"] += n_tokens
        return completions

    def close(self) -> None:
        self.lm = None


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
