"""The openai backend and the managed-server machinery against a real `transformers serve` on
loopback, serving the embedded model (one server per module: it takes ~5-20 s to start on 2 cores).

Covers: start and health, the identity check (this server answers HTTP 500 on /v1/models offline, so
the check falls back to the echoed model name and says so), a wrong expected model failing loudly,
real completions with usage counts and finish reasons through the openai backend, knobs it has no field
for (repetition_penalty, top_k) carried in its generation_config field, one it has no equivalent for
(frequency_penalty) dropped with a warning, greedy decoding with a repetition penalty identical on
the server and the hf backend (the same knobs reach both engines), and stop with the port verified
free."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from character.backends import GenerationRequest, SamplingParams
from character.backends.openai import OpenAIBackend, RetryPolicy
from character.backends.server import ManagedServer, port_is_free
from character.errors import BackendError
from tests.integration.serving import transformers_serve


@pytest.fixture(scope="module")
def serve(embedded_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedServer]:
    with transformers_serve(embedded_model, tmp_path_factory.mktemp("serve") / "serve.log") as srv:
        yield srv
    assert port_is_free("127.0.0.1", srv.port)


def client(serve: ManagedServer, model: str, **kw: object) -> OpenAIBackend:
    return OpenAIBackend(
        model,
        base_url=serve.base_url,
        provider="transformers",
        concurrency=2,
        timeout_s=240,
        retry=RetryPolicy(max_retries=2, base_s=0.1, max_s=0.5),
        **kw,  # type: ignore[arg-type]
    )


def test_identity_check_falls_back_to_echo(
    serve: ManagedServer, embedded_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        check = serve.verify_models([str(embedded_model)])
    # transformers serve cannot list models without a hub cache: the check says how it was done.
    assert check.method == "echo" and check.served == [str(embedded_model)]
    assert "cannot list models" in caplog.text and "HTTP 500" in check.note
    with pytest.raises(BackendError, match="refused a completion for 'some-other-model'"):
        serve.verify_models(["some-other-model"])


def test_completions_through_the_openai_backend(
    serve: ManagedServer, embedded_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    b = client(serve, str(embedded_model))
    reqs = [
        GenerationRequest(
            [{"role": "user", "content": "What is the capital of France?"}],
            SamplingParams(temperature=0.7, max_new_tokens=12, n=2, seed=3, repetition_penalty=1.1),
        ),
        GenerationRequest(
            [{"role": "user", "content": "Tell me a long story about a lighthouse keeper."}],
            SamplingParams(temperature=0.7, max_new_tokens=5, seed=4),
        ),
    ]
    with caplog.at_level(logging.WARNING):
        out = b.generate(reqs, progress=False)
    assert [len(o) for o in out] == [2, 1]
    for c in out[0]:
        assert c.text and c.prompt_tokens > 10 and 0 < c.completion_tokens <= 12
    [story] = out[1]
    assert story.finish_reason == "length" and story.completion_tokens == 5
    # transformers serve answers 422 on a top-level repetition_penalty: it travels in generation_config.
    assert "is dropped" not in caplog.text
    assert b.tokens["completion"] == sum(c.completion_tokens for o in out for c in o)
    assert b.retries == 0


def test_greedy_with_a_penalty_matches_the_hf_backend(
    serve: ManagedServer, embedded_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from character.backends.hf import HFBackend

    req = GenerationRequest(
        [{"role": "user", "content": "List the days of the week."}],
        SamplingParams(temperature=0.0, max_new_tokens=24, repetition_penalty=1.3, frequency_penalty=0.5),
    )
    with caplog.at_level(logging.WARNING):
        [[served]] = client(serve, str(embedded_model)).generate([req], progress=False)
    # No frequency penalty in transformers: dropped, and said so (serve would read it as another knob).
    assert "frequency_penalty is dropped" in caplog.text
    req.params.frequency_penalty = 0.0
    [[local]] = HFBackend(str(embedded_model), device="cpu", threads=1).generate([req], progress=False)
    assert served.text == local.text and served.completion_tokens == local.completion_tokens
    # The penalty really reached the server: without it greedy decoding says something else.
    req.params.repetition_penalty = 1.0
    [[plain]] = client(serve, str(embedded_model)).generate([req], progress=False)
    assert plain.text != served.text


def test_stop_frees_the_port(serve: ManagedServer) -> None:
    port = serve.port
    serve.stop()
    assert serve.proc is None and port_is_free("127.0.0.1", port)
    serve.stop()  # idempotent: the module teardown calls it again
