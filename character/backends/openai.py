"""The `openai` backend: any OpenAI-compatible chat endpoint (vLLM, `transformers serve`, Ollama,
hosted APIs) through the `openai` SDK.

In: `GenerationRequest`s; out: `n` `Completion`s per request, in request order. Every sample has a
fixed slot (request index, sample index) filled exactly once, so retries can neither lose nor
duplicate a sample. Requests run on a bounded thread pool (`backend.concurrency`), each with its own
timeout (`backend.timeout_s`); 429, 5xx, timeouts and connection errors are retried with exponential
backoff and full jitter (honouring Retry-After), up to `backend.max_retries`. The SDK is the transport
(connection pool, timeouts, typed errors that carry the status and headers); its own retries are off,
so every retry is ours: counted, logged, and bounded by one policy. Token counts come from the
response's `usage`.

The API key is read from the environment variable `backend.api_key_env` at construction and lives in
one private attribute: it is never logged, never put in `describe()` (what manifests record), and
scrubbed from every error message (a server may echo headers back).

Every sampling knob is sent explicitly unless `sampling.generation_config = "vllm"` (see
`request_body.py`: servers otherwise fill unsent knobs from the model's generation_config); knobs an
endpoint does not take are dropped with a warning (see `capabilities.py`). `chat_template_kwargs`
(e.g. `{"enable_thinking": false}`) travel with every request. With `n > 1` on an endpoint without
`n`, each sample is its own request with seed `seed + j`: the same seed on every request would return
the same sample n times.

Whether the endpoint can continue a prefilled reply (`can_prefill`) comes from its provider; with
`backend.provider = "auto"` a server whose /v1/models says `owned_by: vllm` is taken for vLLM (a
local vLLM has no telltale URL).
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import openai

from character.backends.base import FAKE_TURN_STOPS, Completion, GenerationRequest
from character.backends.capabilities import (
    Capabilities,
    capabilities_for,
    detect_provider,
    rejected_field,
    without,
)
from character.backends.request_body import GenerationConfigPolicy, sampling_fields
from character.backends.seeds import sample_seed
from character.backends.server import ModelCheck, verify_models
from character.backends.stops import cut_at_stop as find_and_cut
from character.errors import BackendError, ConfigError
from character.progress import progress_bar

if TYPE_CHECKING:
    from character.config import RunConfig

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 425, 429}
# Fields of the chat-completions API proper; anything else (vLLM's top_k, continue_final_message, ...)
# travels in the SDK's extra_body.
STANDARD_FIELDS = {
    "model",
    "messages",
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "n",
    "frequency_penalty",
}


class _Retryable(Exception):
    def __init__(self, msg: str, retry_after: float | None = None, *, connection: bool = False):
        super().__init__(msg)
        self.retry_after = retry_after
        self.connection = connection


@dataclass
class RetryPolicy:
    max_retries: int = 6
    base_s: float = 0.5
    max_s: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        # Full jitter (uniform in [0, cap]) spreads a burst of 429s instead of retrying in lockstep.
        cap = min(self.max_s, self.base_s * 2**attempt)
        d = random.uniform(0, cap)
        if retry_after is not None:
            d = max(d, min(retry_after, self.max_s))
        return d


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str,
        api_key_env: str = "OPENAI_API_KEY",
        provider: str = "auto",
        concurrency: int = 8,
        timeout_s: float = 120.0,
        retry: RetryPolicy | None = None,
        adapters: list[str] | None = None,
        require_key: bool | None = None,
        verify_model: bool = True,
        generation_config: GenerationConfigPolicy = "explicit",
        chat_template_kwargs: dict[str, Any] | None = None,
    ):
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.provider = detect_provider(self.base_url, provider)  # type: ignore[arg-type]
        self._auto_provider = provider == "auto"
        self.caps: Capabilities = capabilities_for(self.provider)
        self.generation_config = generation_config
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.adapters = list(adapters or [])
        self.api_key_env = api_key_env
        self.__key = os.environ.get(api_key_env) or None
        if require_key is None:
            require_key = self.provider == "openai"
        if require_key and not self.__key:
            raise ConfigError(
                f"backend.api_key_env: environment variable {api_key_env} is not set; export the API key "
                f"for {self.base_url} in {api_key_env} (it is never stored or logged)"
            )
        self.verify_model = verify_model
        self.model_check: ModelCheck | None = None
        self.tokens = {"prompt": 0, "completion": 0}
        self.retries = 0
        self.last_tokens_per_s = 0.0
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        # The SDK's own retries are off (max_retries=0): ours count, log and honour one policy. Without
        # a key the Authorization header is left out per request (the SDK insists on some api_key).
        self._client = openai.OpenAI(
            base_url=self.base_url, api_key=self.__key or "unused", timeout=timeout_s, max_retries=0
        )
        self._headers: dict[str, Any] = {} if self.__key else {"Authorization": openai.Omit()}

    @classmethod
    def from_config(
        cls, cfg: RunConfig, model: str, *, adapters: list[str] | None = None, base_url: str | None = None
    ) -> OpenAIBackend:
        b = cfg.backend
        return cls(
            model,
            base_url=base_url or b.base_url,
            api_key_env=b.api_key_env,
            provider=b.provider,
            concurrency=b.concurrency,
            timeout_s=b.timeout_s,
            retry=RetryPolicy(b.max_retries, b.backoff_base_s, b.backoff_max_s),
            adapters=adapters,
            verify_model=b.verify_model,
            generation_config=cfg.sampling.generation_config,
            chat_template_kwargs=b.chat_template_kwargs,
        )

    def check_model(self) -> ModelCheck:
        """Before the first request: the endpoint must serve this model and its adapters (a stale
        server answering for another model is worse than no server). Done once per backend."""
        if self.model_check is None:
            listing: dict[str, Any] = {}

            def call(method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
                out = self.request_json(method, path, body)
                if method == "GET" and path == "/models":
                    listing.update(out)
                return out

            self.model_check = verify_models(
                self.base_url, [self.model, *self.adapters], request_json=call, exact=False
            )
            self._detect_from_listing(listing)
        return self.model_check

    def _detect_from_listing(self, listing: dict[str, Any]) -> None:
        """`auto` on a URL that says nothing: a /v1/models that vLLM wrote (owned_by "vllm") means vLLM,
        with its capabilities (prefill, top_k, ...); anything else stays `generic`."""
        if not self._auto_provider or self.provider != "generic":
            return
        owners = {str(m.get("owned_by", "")) for m in listing.get("data", []) if isinstance(m, dict)}
        if owners == {"vllm"}:
            log.info("%s lists its models as owned by vllm: using vLLM's capabilities", self.base_url)
            self.provider, self.caps = "vllm", capabilities_for("vllm")

    def can_prefill(self) -> bool:
        """Whether this endpoint continues a prefilled assistant reply (asks the server what it is
        first when the provider is `auto`)."""
        if self._auto_provider and self.verify_model:
            self.check_model()
        return self.caps.prefill

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r}, provider={self.provider!r})"

    def describe(self) -> dict[str, Any]:
        """What a manifest may record about this backend (never the key, only the variable's name)."""
        return {
            "backend": self.name,
            "model": self.model,
            "base_url": self.base_url,
            "provider": self.provider,
            "api_key_env": self.api_key_env,
            "api_key_set": self.__key is not None,
            "dropped_knobs": sorted(self._warned),
            "generation_config": self.generation_config,
            "chat_template_kwargs": self.chat_template_kwargs,
            "retries": self.retries,
            "model_check": self.model_check.as_dict() if self.model_check else None,
        }

    # -- HTTP -------------------------------------------------------------------------------------

    def scrub(self, text: str) -> str:
        """Remove the API key from any text bound for a log or an error message."""
        if self.__key:
            text = text.replace(self.__key, "***")
        return text

    def request_json(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One raw JSON exchange through the SDK (model listing, echo checks). Raises _Retryable for
        what is worth retrying, BackendError otherwise."""
        opts: Any = {"headers": self._headers}  # the SDK's RequestOptions (a TypedDict)

        def call() -> Any:
            if method == "GET":
                return self._client.get(path, cast_to=object, options=opts)
            return self._client.post(path, body=body, cast_to=object, options=opts)

        try:
            return self._transport(call, path)
        except _Retryable as e:
            if not e.connection:
                raise
            # A pooled keep-alive connection the server closed after an error reply (transformers serve
            # does after its HTTP 500 on /v1/models): once more, on a fresh connection.
            return self._transport(call, path)

    def _transport(self, fn: Callable[[], Any], path: str) -> Any:
        """Run one SDK call; map its errors to retryable or final ones, with the key scrubbed."""
        url = self.base_url + path
        try:
            out = fn()
        except openai.APIStatusError as e:
            text = self.scrub(_body_text(e))
            if e.status_code in RETRY_STATUS or e.status_code >= 500:
                ra = _parse_retry_after(e.response.headers.get("retry-after"))
                raise _Retryable(f"HTTP {e.status_code} from {url}: {text[:200]}", ra) from None
            raise BackendError(f"HTTP {e.status_code} from {url}: {text[:300]}") from None
        except openai.APITimeoutError:
            raise _Retryable(f"timeout after {self.timeout_s:g}s on {url}") from None
        except openai.APIConnectionError as e:
            reason = e.__cause__ or e
            raise _Retryable(
                f"connection error on {url}: {self.scrub(str(reason))[:200]}", connection=True
            ) from None
        except (openai.APIResponseValidationError, json.JSONDecodeError) as e:
            raise _Retryable(f"invalid JSON from {url}: {self.scrub(str(e))[:120]}") from None
        if not isinstance(out, dict):
            raise _Retryable(f"invalid JSON from {url}: {self.scrub(repr(out))[:120]}")
        return out

    def _with_retries(self, fn: Any, what: str) -> Any:
        attempt = 0
        while True:
            try:
                return fn()
            except _Retryable as e:
                if attempt >= self.retry.max_retries:
                    raise BackendError(
                        f"{what}: gave up after {attempt + 1} attempts: {e}; check the server at "
                        f"{self.base_url} or raise backend.max_retries / backend.timeout_s"
                    ) from None
                d = self.retry.delay(attempt, e.retry_after)
                log.warning("%s: %s; retry %d/%d in %.2fs", what, e, attempt + 1, self.retry.max_retries, d)
                with self._lock:
                    self.retries += 1
                time.sleep(d)
                attempt += 1

    # -- generation -------------------------------------------------------------------------------

    def _warn_once(self, knob: str, why: str) -> None:
        with self._lock:
            if knob in self._warned:
                return
            self._warned.add(knob)
        log.warning("%s endpoint %s: %s is dropped (%s)", self.provider, self.base_url, knob, why)

    def _body(self, req: GenerationRequest, n: int, seed: int | None) -> tuple[dict[str, Any], list[str]]:
        p = req.params
        if req.adapter is not None and req.adapter not in self.adapters:
            raise BackendError(
                f"request asks for adapter '{req.adapter}' but {self.base_url} serves {self.adapters or 'none'}; "
                "start the server with that LoRA module"
            )
        messages = [dict(m) for m in req.messages]
        body: dict[str, Any] = {"model": req.adapter or self.model}
        fields, gen = sampling_fields(p, self.caps, self.generation_config, self._warn_once)
        body.update(fields)
        if gen:
            body["generation_config"] = json.dumps(gen, sort_keys=True)
        if req.prefill:
            if not self.caps.prefill:
                raise BackendError(
                    f"backend.provider = '{self.provider}' ({self.base_url}) cannot continue a prefilled "
                    "assistant reply; set backend.provider = 'vllm' if it is a vLLM server, or turn the "
                    "prefill off (distill.teacher_prefill = 'off')"
                )
            messages.append({"role": "assistant", "content": req.prefill})
            body.update(continue_final_message=True, add_generation_prompt=False)
        body["messages"] = messages
        if self.chat_template_kwargs:
            if self.caps.chat_template_kwargs:
                body["chat_template_kwargs"] = dict(self.chat_template_kwargs)
            else:
                self._warn_once(
                    "chat_template_kwargs", f"not supported; asked for {self.chat_template_kwargs}"
                )
        stops = list(dict.fromkeys([*FAKE_TURN_STOPS, *p.stop]))
        sent_stops = stops
        if self.caps.max_stops is not None and len(stops) > self.caps.max_stops:
            sent_stops = stops[: self.caps.max_stops]
            self._warn_once(
                "stop", f"it takes {self.caps.max_stops} stop strings; the rest are cut client-side"
            )
        body["stop"] = sent_stops
        if seed is not None:
            if self.caps.seed:
                body["seed"] = seed
            else:
                self._warn_once("seed", "not supported; samples are not reproducible")
        if n > 1:
            body["n"] = n
        return body, stops

    def _post_chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /chat/completions through the SDK: API fields as arguments, the rest as extra_body."""
        std = {k: v for k, v in body.items() if k in STANDARD_FIELDS}
        extra = {k: v for k, v in body.items() if k not in STANDARD_FIELDS}
        return self._transport(
            lambda: self._client.chat.completions.create(
                **std, extra_body=extra or None, extra_headers=self._headers
            ).to_dict(),
            "/chat/completions",
        )

    def _chat(self, req: GenerationRequest, n: int, seed: int | None) -> list[Completion]:
        """Up to `n` completions from one request (an endpoint may ignore `n` and return fewer)."""
        while True:
            body, stops = self._body(req, n, seed)
            try:
                data = self._with_retries(lambda body=body: self._post_chat(body), "chat completion")
                break
            except BackendError as e:
                field = rejected_field(str(e), set(body) - {"model", "messages", "max_tokens", "stop"})
                if field is None:
                    raise
                self.caps = without(self.caps, field)
                self._warn_once(field, "the endpoint rejected it")
                if field == "n":
                    n = 1
        return self._parse(data, stops)

    def _parse(self, data: dict[str, Any], stops: list[str]) -> list[Completion]:
        choices = data.get("choices") or []
        if not choices:
            raise BackendError(f"{self.base_url} returned no choices: {self.scrub(json.dumps(data)[:200])}")
        usage = data.get("usage") or {}
        if not usage:
            self._warn_once("usage", "the response has no usage counts; tokens are recorded as 0")
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        with self._lock:
            self.tokens["prompt"] += prompt
            self.tokens["completion"] += completion
        out = []
        k = len(choices)
        for j, ch in enumerate(sorted(choices, key=lambda c: c.get("index", 0))):
            text = (ch.get("message") or {}).get("content") or ""
            # Client-side cut too (an endpoint may take fewer stop strings than we need); a fake-turn
            # marker inside an open code block does not cut (stops.py).
            text, hit = find_and_cut(text, stops)
            reason = ch.get("finish_reason")
            finish: Literal["stop", "length"] = "length" if (reason == "length" and hit is None) else "stop"
            # One usage block covers all choices: the prompt is each sample's prompt, the completion
            # tokens are shared out so that the sum over samples is what the endpoint billed.
            share = completion // k + (1 if j < completion % k else 0)
            # The stop string that ended it: cut here, or named by the server (vLLM's `stop_reason`;
            # an int there is a stop token id, which is EOS-like, so None).
            server_stop = ch.get("stop_reason")
            stopped_by = hit or (server_stop if isinstance(server_stop, str) and reason == "stop" else None)
            out.append(Completion(text.strip(), finish, prompt, share, stopped_by=stopped_by))
        return out

    def _sample(self, req: GenerationRequest) -> list[Completion]:
        p = req.params
        got: list[Completion] = []
        while len(got) < p.n:
            j = len(got)
            want = p.n - j if self.caps.n else 1
            seed = None if p.seed is None else sample_seed(p.seed, j)
            batch = self._chat(req, want, seed)[:want]
            if len(batch) < want and "n" not in self._warned:
                self._warn_once(
                    "n", f"asked for {want} choices, got {len(batch)}; sending one request per sample"
                )
                self.caps = without(self.caps, "n")
            got.extend(batch)
        return got

    def generate(self, requests: list[GenerationRequest], *, progress: bool = True) -> list[list[Completion]]:
        if self.verify_model and requests:
            self.check_model()
        results: list[list[Completion] | None] = [None] * len(requests)
        total = sum(r.params.n for r in requests)
        t0 = time.perf_counter()
        done_tokens = 0
        with (
            progress_bar(f"generating ({self.model})", total=total, enabled=progress) as bar,
            ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="openai") as pool,
        ):
            futures = {pool.submit(self._sample, r): i for i, r in enumerate(requests)}
            try:
                for fut in as_completed(futures):
                    i = futures[fut]
                    comps = fut.result()
                    if results[i] is not None:  # a slot is filled once; anything else is a bug here
                        raise BackendError(f"internal: sample slot {i} filled twice")
                    results[i] = comps
                    done_tokens += sum(c.completion_tokens for c in comps)
                    self.last_tokens_per_s = done_tokens / max(time.perf_counter() - t0, 1e-6)
                    bar.advance(len(comps), tok_s=self.last_tokens_per_s)
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
        return [r if r is not None else [] for r in results]

    def close(self) -> None:
        self._client.close()


def _body_text(e: openai.APIStatusError) -> str:
    try:
        return e.response.text
    except Exception:
        return str(e)


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
