"""The `openai` backend: any OpenAI-compatible chat endpoint (vLLM, `transformers serve`, Ollama,
hosted APIs) over plain HTTP.

In: `GenerationRequest`s; out: `n` `Completion`s per request, in request order. Every sample has a
fixed slot (request index, sample index) filled exactly once, so retries can neither lose nor
duplicate a sample. Requests run on a bounded thread pool (`backend.concurrency`), each with its own
timeout (`backend.timeout_s`); 429, 5xx, timeouts and connection errors are retried with exponential
backoff and full jitter (honouring Retry-After), up to `backend.max_retries`. Token counts come from
the response's `usage`.

The API key is read from the environment variable `backend.api_key_env` at construction and lives in
one private attribute: it is never logged, never put in `describe()` (what manifests record), and
scrubbed from every error message (a server may echo headers back).

Sampling knobs an endpoint does not take are dropped with a warning (see `capabilities.py`). With
`n > 1` on an endpoint without `n`, each sample is its own request with seed `seed + j`: the same seed
on every request would return the same sample n times.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from http.client import HTTPException
from typing import TYPE_CHECKING, Any, Literal

from character.backends.base import FAKE_TURN_STOPS, Completion, GenerationRequest, cut_at_stop
from character.backends.capabilities import (
    Capabilities,
    capabilities_for,
    detect_provider,
    rejected_field,
    without,
)
from character.backends.server import ModelCheck, verify_models
from character.errors import BackendError, ConfigError
from character.progress import progress_bar

if TYPE_CHECKING:
    from character.config import RunConfig

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 425, 429}


class _Retryable(Exception):
    def __init__(self, msg: str, retry_after: float | None = None):
        super().__init__(msg)
        self.retry_after = retry_after


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
    ):
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.provider = detect_provider(self.base_url, provider)  # type: ignore[arg-type]
        self.caps: Capabilities = capabilities_for(self.provider)
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
        )

    def check_model(self) -> ModelCheck:
        """Before the first request: the endpoint must serve this model and its adapters (a stale
        server answering for another model is worse than no server). Done once per backend."""
        if self.model_check is None:
            self.model_check = verify_models(
                self.base_url, [self.model, *self.adapters], request_json=self.request_json, exact=False
            )
        return self.model_check

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
        """One HTTP exchange. Raises _Retryable for what is worth retrying, BackendError otherwise."""
        url = self.base_url + path
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.__key:
            headers["Authorization"] = f"Bearer {self.__key}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            text = self.scrub(_read_body(e))
            if e.code in RETRY_STATUS or e.code >= 500:
                ra = e.headers.get("Retry-After") if e.headers else None
                raise _Retryable(f"HTTP {e.code} from {url}: {text[:200]}", _parse_retry_after(ra)) from None
            raise BackendError(f"HTTP {e.code} from {url}: {text[:300]}") from None
        except TimeoutError as e:
            raise _Retryable(f"timeout after {self.timeout_s:g}s on {url} ({type(e).__name__})") from None
        except (urllib.error.URLError, ConnectionError, HTTPException, OSError) as e:
            reason = getattr(e, "reason", e)
            raise _Retryable(f"connection error on {url}: {self.scrub(str(reason))}") from None
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            raise _Retryable(
                f"invalid JSON from {url}: {self.scrub(raw[:120].decode(errors='replace'))}"
            ) from None

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
        body: dict[str, Any] = {
            "model": req.adapter or self.model,
            "max_tokens": p.max_new_tokens,
            "temperature": p.temperature,
            "top_p": p.top_p,
        }
        if req.prefill:
            if not self.caps.prefill:
                raise BackendError(
                    f"{self.provider} endpoint {self.base_url} cannot continue a prefilled assistant reply; "
                    "use the hf or vllm backend, or set distill.teacher_prefill = 'off'"
                )
            messages.append({"role": "assistant", "content": req.prefill})
            body.update(continue_final_message=True, add_generation_prompt=False)
        body["messages"] = messages
        stops = list(dict.fromkeys([*FAKE_TURN_STOPS, *p.stop]))
        sent_stops = stops
        if self.caps.max_stops is not None and len(stops) > self.caps.max_stops:
            sent_stops = stops[: self.caps.max_stops]
            self._warn_once(
                "stop", f"it takes {self.caps.max_stops} stop strings; the rest are cut client-side"
            )
        body["stop"] = sent_stops
        if p.repetition_penalty != 1.0:
            if self.caps.repetition_penalty:
                body["repetition_penalty"] = p.repetition_penalty
            else:
                self._warn_once("repetition_penalty", f"not supported; asked for {p.repetition_penalty}")
        if p.frequency_penalty:
            if self.caps.frequency_penalty:
                body["frequency_penalty"] = p.frequency_penalty
            else:
                self._warn_once("frequency_penalty", f"not supported; asked for {p.frequency_penalty}")
        if seed is not None:
            if self.caps.seed:
                body["seed"] = seed
            else:
                self._warn_once("seed", "not supported; samples are not reproducible")
        if n > 1:
            body["n"] = n
        return body, stops

    def _chat(self, req: GenerationRequest, n: int, seed: int | None) -> list[Completion]:
        """Up to `n` completions from one request (an endpoint may ignore `n` and return fewer)."""
        while True:
            body, stops = self._body(req, n, seed)
            try:
                data = self._with_retries(
                    lambda body=body: self.request_json("POST", "/chat/completions", body), "chat completion"
                )
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
            text, cut = cut_at_stop(text, stops)
            reason = ch.get("finish_reason")
            finish: Literal["stop", "length"] = "length" if (reason == "length" and not cut) else "stop"
            # One usage block covers all choices: the prompt is each sample's prompt, the completion
            # tokens are shared out so that the sum over samples is what the endpoint billed.
            share = completion // k + (1 if j < completion % k else 0)
            out.append(Completion(text.strip(), finish, prompt, share))
        return out

    def _sample(self, req: GenerationRequest) -> list[Completion]:
        p = req.params
        got: list[Completion] = []
        while len(got) < p.n:
            j = len(got)
            want = p.n - j if self.caps.n else 1
            seed = None if p.seed is None else p.seed + j
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
        return None


def _read_body(e: urllib.error.HTTPError) -> str:
    try:
        return e.read().decode(errors="replace")
    except Exception:
        return ""


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
