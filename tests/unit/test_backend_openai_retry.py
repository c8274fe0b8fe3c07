"""The openai backend against a loopback HTTP server that speaks the chat-completions protocol and
misbehaves on purpose: 429/500 then success, a slow reply past the timeout, a field it rejects, an
`n` it ignores, an error that echoes the Authorization header. The fake sits at the process boundary;
the backend code under test is the real one."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from character.backends.base import GenerationRequest, SamplingParams
from character.backends.openai import OpenAIBackend, RetryPolicy
from character.backends.seeds import sample_seed
from character.backends.server import free_port
from character.errors import BackendError, ConfigError
from tests.fakes.json_http import JsonHandler, LocalHttpServer

SECRET = "sk-test-0123456789abcdef-SECRET"


class FakeServer(LocalHttpServer):
    """Answers /v1/chat/completions with the last user message echoed, after a scripted failure plan."""

    def __init__(self) -> None:
        self.plan: dict[str, list[Any]] = {}  # prompt -> statuses/actions to play before succeeding
        self.calls: Counter[str] = Counter()
        self.successes: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []
        self.reject_fields: set[str] = set()
        self.ignore_n = False
        self.serve_as: str | None = None  # answer as another model (a stale server)
        self.lock = threading.Lock()
        outer = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:
                body = self.read_json()
                prompt = body["messages"][-1]["content"]
                with outer.lock:
                    outer.bodies.append(body)
                    outer.calls[prompt] += 1
                    step = outer.plan.get(prompt, [])
                    action = step.pop(0) if step else None
                if action == "sleep":
                    time.sleep(1.0)
                elif action == "echo-auth":
                    return self.send_json(401, {"error": f"bad key {self.headers.get('Authorization')}"})
                elif isinstance(action, int):
                    return self.send_json(action, {"error": "try again"}, {"Retry-After": "0"})
                bad = outer.reject_fields & set(body)
                if bad:
                    return self.send_json(422, {"detail": f"Unexpected fields in the request: {bad}"})
                n = 1 if outer.ignore_n else body.get("n", 1)
                seed = body.get("seed")
                choices = [
                    {
                        "index": j,
                        "finish_reason": "stop",
                        "message": {
                            "role": "assistant",
                            "content": f"re:{prompt}|seed={seed}|j={j}\nUser: fake",
                        },
                    }
                    for j in range(n)
                ]
                with outer.lock:
                    outer.successes[prompt] += n
                self.send_json(
                    200,
                    {
                        "model": outer.serve_as or body["model"],
                        "choices": choices,
                        "usage": {"prompt_tokens": 10, "completion_tokens": 4 * n},
                    },
                )

        super().__init__(Handler)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    s = FakeServer()
    try:
        yield s
    finally:
        s.close()


def backend(url: str, **kw: Any) -> OpenAIBackend:
    kw.setdefault("retry", RetryPolicy(max_retries=4, base_s=0.01, max_s=0.05))
    return OpenAIBackend("m", base_url=url, concurrency=4, timeout_s=0.5, **kw)


def reqs(prompts: list[str], **params: Any) -> list[GenerationRequest]:
    return [GenerationRequest([{"role": "user", "content": p}], SamplingParams(**params)) for p in prompts]


def test_429_and_500_then_success_loses_and_duplicates_nothing(server: FakeServer) -> None:
    prompts = [f"p{i}" for i in range(12)]
    for i, p in enumerate(prompts):
        server.plan[p] = [429, 500] if i % 3 == 0 else ([503] if i % 3 == 1 else [])
    b = backend(server.url, provider="transformers")
    out = b.generate(reqs(prompts, n=2, seed=7, max_new_tokens=8), progress=False)
    assert len(out) == len(prompts)
    for p, comps in zip(prompts, out, strict=True):
        # In order, n samples each, distinct seeds (seed + j), fake turn cut off.
        # One request per sample (this endpoint has no `n`), each with its own sample seed.
        assert [c.text for c in comps] == [f"re:{p}|seed=7|j=0", f"re:{p}|seed={sample_seed(7, 1)}|j=0"]
        assert all(c.finish_reason == "stop" and c.completion_tokens == 4 for c in comps)
    # Every sample generated exactly once on the server side, retries included.
    assert all(server.successes[p] == 2 for p in prompts)
    assert b.retries == 4 * 2 + 4 * 1  # the plans above, played once each
    assert b.tokens == {"prompt": 10 * 24, "completion": 4 * 24}


def test_timeout_is_retried(server: FakeServer) -> None:
    server.plan["slow"] = ["sleep"]
    b = backend(server.url)
    [[c]] = b.generate(reqs(["slow"]), progress=False)
    assert c.text.startswith("re:slow") and b.retries == 1


def test_retries_exhausted_is_a_clear_error(server: FakeServer) -> None:
    server.plan["down"] = [500] * 10
    b = backend(server.url, retry=RetryPolicy(max_retries=2, base_s=0.0, max_s=0.0))
    with pytest.raises(BackendError, match=r"gave up after 3 attempts: HTTP 500.*backend.max_retries"):
        b.generate(reqs(["down"]), progress=False)


def test_connection_refused_is_retried_then_fails() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    b = backend(url, retry=RetryPolicy(max_retries=1, base_s=0.0, max_s=0.0), verify_model=False)
    with pytest.raises(BackendError, match="connection error"):
        b.generate(reqs(["x"]), progress=False)
    assert b.retries == 1


def test_unsupported_knob_is_dropped_with_a_warning(
    server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.reject_fields = {"repetition_penalty"}
    b = backend(server.url, provider="generic")
    with caplog.at_level(logging.WARNING):
        out = b.generate(reqs(["a", "b"], repetition_penalty=1.2), progress=False)
    assert [c.text for [c] in out] == ["re:a|seed=None|j=0", "re:b|seed=None|j=0"]
    assert "repetition_penalty is dropped" in caplog.text
    assert "repetition_penalty" not in server.bodies[-1]
    # A known endpoint without the knob never sends it, and says so.
    caplog.clear()
    b2 = backend(server.url, provider="ollama")
    with caplog.at_level(logging.WARNING):
        b2.generate(reqs(["c"], repetition_penalty=1.2), progress=False)
    assert "repetition_penalty is dropped" in caplog.text and "repetition_penalty" not in server.bodies[-1]


def test_ignored_n_falls_back_to_one_request_per_sample(
    server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.ignore_n = True
    b = backend(server.url, provider="generic")
    with caplog.at_level(logging.WARNING):
        [comps] = b.generate(reqs(["q"], n=3, seed=1), progress=False)
    assert [c.text for c in comps] == [f"re:q|seed={sample_seed(1, j)}|j=0" for j in range(3)]
    assert "asked for 3 choices, got 1" in caplog.text


def test_prefill_on_endpoint_without_it_is_an_error(server: FakeServer) -> None:
    b = backend(server.url, provider="transformers")
    r = reqs(["x"])[0]
    r.prefill = "Sorry, "
    with pytest.raises(BackendError, match="cannot continue a prefilled"):
        b.generate([r], progress=False)


def test_api_key_never_in_logs_errors_or_manifest(
    server: FakeServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_KEY", SECRET)
    server.plan["k"] = [500, "echo-auth"]
    b = backend(server.url, api_key_env="MY_KEY")
    with caplog.at_level(logging.DEBUG), pytest.raises(BackendError) as err:
        b.generate(reqs(["k"]), progress=False)
    assert "HTTP 401" in str(err.value) and "Bearer ***" in str(err.value)
    text = caplog.text + str(err.value) + repr(err.value) + repr(b) + json.dumps(b.describe())
    assert SECRET not in text
    assert b.describe()["api_key_env"] == "MY_KEY" and b.describe()["api_key_set"] is True


def test_hosted_openai_needs_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(ConfigError, match="NO_SUCH_KEY_VAR is not set"):
        OpenAIBackend("gpt", base_url="https://api.openai.com/v1", api_key_env="NO_SUCH_KEY_VAR")


def test_unknown_adapter_is_an_error(server: FakeServer) -> None:
    b = backend(server.url, adapters=["dpo"])
    r = reqs(["x"])[0]
    r.adapter = "sft"
    with pytest.raises(BackendError, match="adapter 'sft'"):
        b.generate([r], progress=False)
    r.adapter = "dpo"
    b.generate([r], progress=False)
    assert server.bodies[-1]["model"] == "dpo"


def test_wrong_model_is_caught_before_any_request(server: FakeServer) -> None:
    server.serve_as = "some-other-model"
    b = backend(server.url)
    with pytest.raises(BackendError, match="answered a request for 'm' as 'some-other-model'"):
        b.generate(reqs(["real prompt"]), progress=False)
    assert server.calls["real prompt"] == 0
    server.serve_as = None
    b.generate(reqs(["real prompt"]), progress=False)
    assert b.describe()["model_check"]["method"] == "echo"  # this fake cannot list models either
