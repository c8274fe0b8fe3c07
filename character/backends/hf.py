"""The `hf` backend: batched transformers generation in this process.

In: `GenerationRequest`s (message lists, sampling parameters, optional prefill and adapter name).
Out: one list of `n` `Completion`s per request, in request order.

Prompts are rendered with the shared chat renderer, grouped by (adapter, sampling settings), sorted
by length (less padding), left-padded and generated in batches. Stop strings end a sequence early and
are cut from the text; a sequence that stopped on a string does not count the padding after it. A
fake-turn marker inside an open code block is checked before the row is cut and lets it go on
(`character.backends.stops`); `Completion.stopped_by` names the stop string that ended a reply.
PEFT adapters load on the base model by name (`load_adapter`), any number of them; each request
names one or none, and the base runs with every adapter disabled.

Speed on CPU (bench/generation.py, technical-reports/002-generation-throughput.md): stop-string
tables are built once per process (transformers rebuilds them on every call, ~5 s), `FastTopP`
avoids sorting the whole vocabulary per step, and batch size is the first lever. CUDA runs in bf16,
CPU in fp32 unless `dtype` says otherwise (bf16 on an AMX CPU is 2-3x faster but changes samples).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any, Literal

from character.backends.base import Completion, GenerationRequest, default_stops
from character.backends.seeds import sample_seed
from character.backends.stops import find_stop
from character.chat import encode
from character.errors import BackendError, ConfigError
from character.models import load_model, load_tokenizer, resolve_model
from character.progress import progress_bar

log = logging.getLogger(__name__)

CacheKind = Literal["auto", "static", "dynamic"]
DTypeName = Literal["auto", "float32", "bfloat16"]
# Stop-string criteria by (tokenizer, vocab size, stops), shared by every backend in the process.
_STOP_CRITERIA: dict[tuple[Any, ...], Any] = {}


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
        dtype: DTypeName = "auto",
        cache: CacheKind = "auto",
        threads: int = 0,
        chat_template_kwargs: dict[str, Any] | None = None,
    ):
        if batch_size < 1:
            raise ConfigError(f"backend.batch_size must be >= 1, got {batch_size}")
        if cache not in ("auto", "static", "dynamic"):
            raise ConfigError(f"backend.cache must be 'auto', 'static' or 'dynamic', got {cache!r}")
        self.model = model
        self.batch_size = batch_size
        self.tokenizer = tokenizer or load_tokenizer(model)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.lm = model_obj if model_obj is not None else load_model(model, device)
        if dtype != "auto":
            import torch

            self.lm.to(getattr(torch, dtype))
        self.lm.eval()
        if threads and self.device.type == "cpu":
            import torch

            # Process-wide: torch has one intra-op pool. Oversubscribed threads on a busy machine spin
            # at barriers while preempted; one thread per process can be an order of magnitude faster.
            torch.set_num_threads(threads)
        self.cache = _pick_cache(cache, self.device.type, str(self.dtype))
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        # Every end-of-turn id the model declares (Gemma-3 lists <eos> and <end_of_turn>): stopping on
        # the tokenizer's one alone runs every reply to the token limit, and it is dropped as cut off.
        self.eos_ids = eos_token_ids(self.tokenizer, self.lm)
        self.adapters: list[str] = []
        for name, path in (adapters or {}).items():
            self.load_adapter(name, path)
        self.tokens = {"prompt": 0, "completion": 0}
        self.last_tokens_per_s = 0.0
        log.info(
            "hf backend: %s on %s (%s), batch %d, %s cache, adapters %s",
            model,
            self.device,
            str(self.dtype).replace("torch.", ""),
            batch_size,
            self.cache,
            self.adapters or "none",
        )

    @property
    def device(self) -> Any:
        return next(self.lm.parameters()).device

    @property
    def dtype(self) -> Any:
        return next(self.lm.parameters()).dtype

    def load_adapter(self, name: str, path: str) -> None:
        """Load a PEFT adapter under `name`; requests select it with `adapter=name`."""
        from peft import PeftModel

        if name in self.adapters:
            raise ConfigError(f"adapter name '{name}' is already loaded; give each adapter its own name")
        path = resolve_model(path)
        if not isinstance(self.lm, PeftModel):
            self.lm = PeftModel.from_pretrained(self.lm, path, adapter_name=name, is_trainable=False)
        else:
            self.lm.load_adapter(path, adapter_name=name, is_trainable=False)
        self.lm.eval()
        self.adapters.append(name)

    def generate(self, requests: list[GenerationRequest], *, progress: bool = True) -> list[list[Completion]]:
        for r in requests:
            if r.adapter is not None and r.adapter not in self.adapters:
                raise BackendError(
                    f"request asks for adapter '{r.adapter}' but the hf backend has {self.adapters or 'none'} "
                    "loaded; pass it in adapters={name: path} or call load_adapter()"
                )
        results: list[list[Completion]] = [[] for _ in requests]
        # One generate() call takes one setting of each knob, so group by them. Seeds are per row
        # (`SeededSampler`), so requests with different seeds still share batches.
        groups: dict[tuple[Any, ...], list[tuple[int, int]]] = defaultdict(list)
        for i, r in enumerate(requests):
            p = r.params
            key = (
                r.adapter,
                p.temperature,
                p.top_p,
                p.max_new_tokens,
                tuple(p.stop),
                p.repetition_penalty,
                p.frequency_penalty,
                p.seed is None,
            )
            groups[key].extend((i, j) for j in range(p.n))
        total = sum(len(v) for v in groups.values())
        generated = 0
        t0 = time.perf_counter()
        with progress_bar(f"generating ({self.model})", total=total, enabled=progress) as bar:
            for idxs in groups.values():
                encoded = {
                    i: encode(
                        self.tokenizer,
                        requests[i].messages,
                        add_generation_prompt=True,
                        prefill=requests[i].prefill,
                        chat_template_kwargs=self.chat_template_kwargs,
                    )
                    for i in {i for i, _ in idxs}
                }
                # Longest first: the largest batch shape (memory peak) shows up at once, not at the end.
                order = sorted(idxs, key=lambda ij: -len(encoded[ij[0]]))
                for b, start in enumerate(range(0, len(order), self.batch_size)):
                    batch = order[start : start + self.batch_size]
                    first = requests[batch[0][0]]
                    seeds = None
                    if first.params.seed is not None:
                        seeds = [sample_seed(requests[i].params.seed or 0, j) for i, j in batch]
                    prefills = [requests[i].prefill for i, _ in batch]
                    outs = self._generate_batch([encoded[i] for i, _ in batch], first, b, seeds, prefills)
                    for (i, _), c in zip(batch, outs, strict=True):
                        results[i].append(c)
                        generated += c.completion_tokens
                    self.last_tokens_per_s = generated / max(time.perf_counter() - t0, 1e-6)
                    bar.advance(len(batch), tok_s=self.last_tokens_per_s)
        return results

    def _generate_batch(
        self,
        prompts: list[list[int]],
        req: GenerationRequest,
        batch_no: int = 0,
        seeds: list[int] | None = None,
        prefills: list[str | None] | None = None,
    ) -> list[Completion]:
        import torch
        from transformers import LogitsProcessorList

        from character.backends.hf_logits import FastTopP, FrequencyPenalty, MinP, SeededSampler, TopK

        p = req.params
        tok = self.tokenizer
        stops = default_stops(p.stop, tok.eos_token)
        width = max(len(x) for x in prompts)
        pad = tok.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in prompts], device=self.device)
        attention = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in prompts], device=self.device)
        if p.seed is not None and seeds is None:
            # Each batch its own stream: the same seed per batch would repeat the same draws.
            torch.manual_seed(p.seed + batch_no)
        if req.adapter is not None:
            self.lm.set_adapter(req.adapter)
        sampling = p.temperature > 0
        processors = LogitsProcessorList()
        if p.frequency_penalty:
            processors.append(FrequencyPenalty(p.frequency_penalty, width))
        kwargs: dict[str, Any] = {
            "max_new_tokens": p.max_new_tokens,
            "do_sample": sampling,
            "pad_token_id": pad,
            "eos_token_id": self.eos_ids,
            "repetition_penalty": p.repetition_penalty,
            "stopping_criteria": self._stop_criteria(
                tuple(s for s in stops if s != tok.eos_token), width, prefills or [None] * len(prompts)
            ),
            "cache_implementation": self.cache,
        }
        if sampling:
            # vLLM's order: top-k, then the nucleus on what is left, then min-p.
            if p.top_k > 0:
                processors.append(TopK(p.top_k))
            if p.top_p < 1.0:
                processors.append(FastTopP(p.top_p, p.temperature))
            if p.min_p > 0:
                processors.append(MinP(p.min_p, p.temperature))
            if seeds is not None:
                # One random stream per row, seeded per request: the draw is the last processor and
                # the only finite logit is the sampled token, so decoding is greedy from here.
                processors.append(SeededSampler(seeds, p.temperature))  # top-k applied above
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            else:
                kwargs.update(temperature=p.temperature, top_p=1.0, top_k=0)
        kwargs["logits_processor"] = processors
        ctx = self.lm.disable_adapter() if (req.adapter is None and self.adapters) else _null()
        with torch.inference_mode(), ctx:
            out = self.lm.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
        completions = []
        rows = zip(out[:, width:].tolist(), prompts, prefills or [req.prefill] * len(prompts), strict=True)
        for row, prompt, prefill in rows:
            completions.append(self._completion(row, len(prompt), stops, req, prefill))
        return completions

    def _stop_criteria(self, stops: tuple[str, ...], width: int, prefills: list[str | None]) -> Any:
        """Stop strings that respect code: `StopStringCriteria` (built once per stop set: it scans the
        whole vocabulary, ~5 s on 2 cores, and transformers' own cache misses because the vocab dict
        comes back in a different order each call) proposes a stop; `_CodeAwareStop` checks it before
        the row is cut, so a fake-turn marker inside an open code block lets generation go on."""
        from transformers import StoppingCriteriaList, StopStringCriteria

        tok = self.tokenizer
        key = (tok.name_or_path, len(tok), stops)
        if key not in _STOP_CRITERIA:
            _STOP_CRITERIA[key] = StopStringCriteria(tok, list(stops))
        return StoppingCriteriaList([_CodeAwareStop(_STOP_CRITERIA[key], tok, stops, width, prefills)])

    def _completion(
        self, row: list[int], prompt_len: int, stops: list[str], req: GenerationRequest, prefill: str | None
    ) -> Completion:
        tok = self.tokenizer
        pad = tok.pad_token_id
        # A finished row is filled with padding up to the longest row; find where it really ended.
        end = next((i for i, t in enumerate(row) if t in self.eos_ids), None)
        hit_eos = end is not None
        body = row[:end] if end is not None else list(row)
        if not hit_eos and pad is not None:
            while body and body[-1] == pad:
                body.pop()
        # The prefill is part of the reply for the code-fence state (a fence it opened is still open).
        lead = prefill or ""
        full = lead + tok.decode(body, skip_special_tokens=False)
        hit = find_stop(full, stops, eos=tok.eos_token, start=len(lead))
        stopped = hit is not None
        text = full[len(lead) : hit[0] if hit else len(full)]
        stopped_by = hit[1] if hit and hit[1] != tok.eos_token else None
        # Stopped on a string: what follows is padding (SmolLM pads with EOS), so only a real EOS counts.
        n_tokens = len(body) + (1 if hit_eos and not stopped else 0)
        ended = stopped or hit_eos or n_tokens < req.params.max_new_tokens
        # Keep the leading space after a prefill ("My apologies," + " I..."); trim it otherwise.
        text = text.rstrip() if prefill else text.strip()
        self.tokens["prompt"] += prompt_len
        self.tokens["completion"] += n_tokens
        return Completion(text, "stop" if ended else "length", prompt_len, n_tokens, stopped_by)

    def close(self) -> None:
        self.lm = None


def eos_token_ids(tok: Any, lm: Any) -> list[int]:
    """The tokenizer's EOS id, then every id in the model's generation_config.eos_token_id (int or list)."""
    ids = [tok.eos_token_id] if tok.eos_token_id is not None else []
    declared = getattr(getattr(lm, "generation_config", None), "eos_token_id", None)
    for i in declared if isinstance(declared, list | tuple) else [declared]:
        if isinstance(i, int) and i not in ids:
            ids.append(i)
    return ids


def _pick_cache(cache: str, device: str, dtype: str) -> str:
    """`auto`: static, except bf16 on CPU, where the static cache hit a path ~10x slower than the
    dynamic one (technical-reports/002)."""
    if cache != "auto":
        if cache == "static" and device == "cpu" and "bfloat16" in dtype:
            log.warning("backend.cache = 'static' with bf16 on CPU is very slow here; 'auto' picks 'dynamic'")
        return cache
    return "dynamic" if (device == "cpu" and "bfloat16" in dtype) else "static"


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class _CodeAwareStop:
    """A stopping criterion: the wrapped `StopStringCriteria` says a row ends with a stop string; this
    one lets the row stop only when that stop really ends the reply (`stops.find_stop`: not a fake-turn
    marker inside an open code block). Rows are decoded only when the inner criterion fires."""

    def __init__(self, inner: Any, tok: Any, stops: tuple[str, ...], width: int, prefills: list[str | None]):
        self.inner, self.tok, self.stops, self.width, self.prefills = inner, tok, stops, width, prefills

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        done = self.inner(input_ids, scores, **kwargs)
        if not bool(done.any()):
            return done
        for row in done.nonzero().flatten().tolist():
            lead = self.prefills[row] or ""
            text = lead + self.tok.decode(input_ids[row, self.width :].tolist(), skip_special_tokens=False)
            if find_stop(text, self.stops, start=len(lead)) is None:
                done[row] = False
        return done
