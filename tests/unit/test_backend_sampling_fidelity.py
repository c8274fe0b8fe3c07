"""hf and servers sample alike: what the openai backend puts on the wire for each kind of endpoint, and
what a judge does on an endpoint that cannot continue a prefilled reply.

The server is a loopback HTTP fake at the process boundary that speaks the chat-completions protocol
(records each body, lists its models with an `owned_by`, answers with scripted text); the backend,
the judge and the capability map under test are the real ones."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from character.backends.base import GenerationRequest, SamplingParams
from character.backends.capabilities import can_prefill
from character.backends.openai import OpenAIBackend, RetryPolicy
from character.config import RunConfig
from character.errors import BackendError
from character.eval.judge import PREFILL, judge_pairs, parse_plain_verdict
from character.eval.target import Generator, Target
from tests.fakes.json_http import JsonHandler, LocalHttpServer


class ChatServer(LocalHttpServer):
    """Answers /v1/models (owned by `owner`) and /v1/chat/completions (text from `reply(body)`)."""

    def __init__(self, owner: str = "vllm", reply: Callable[[dict[str, Any]], str] | None = None):
        self.owner = owner
        self.reply = reply or (lambda body: "ok.")
        self.bodies: list[dict[str, Any]] = []
        lock = threading.Lock()
        outer = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:
                self.send_json(
                    200, {"object": "list", "data": [{"id": "m", "object": "model", "owned_by": outer.owner}]}
                )

            def do_POST(self) -> None:
                body = self.read_json()
                with lock:
                    outer.bodies.append(body)
                text = outer.reply(body)
                self.send_json(
                    200,
                    {
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": text},
                            }
                        ],
                        "usage": {"prompt_tokens": 5, "completion_tokens": 2},
                    },
                )

        super().__init__(Handler, poll_s=0.05)

    def chat_bodies(self) -> list[dict[str, Any]]:
        return [b for b in self.bodies if b.get("max_tokens", 0) > 1]  # not the 1-token echo checks


@pytest.fixture
def server() -> Iterator[ChatServer]:
    s = ChatServer()
    try:
        yield s
    finally:
        s.close()


def backend(url: str, **kw: Any) -> OpenAIBackend:
    kw.setdefault("retry", RetryPolicy(max_retries=1, base_s=0.0, max_s=0.0))
    return OpenAIBackend("m", base_url=url, timeout_s=5, **kw)


def ask(b: OpenAIBackend, n: int = 1, **params: Any) -> None:
    reqs = [
        GenerationRequest([{"role": "user", "content": f"q{i}"}], SamplingParams(**params)) for i in range(n)
    ]
    b.generate(reqs, progress=False)


# ---- every knob on the wire --------------------------------------------------------------------------


def test_explicit_policy_sends_every_knob_even_at_neutral_values(server: ChatServer) -> None:
    ask(backend(server.url, provider="vllm"), temperature=0.7, top_p=0.95, max_new_tokens=9, seed=3)
    [body] = server.chat_bodies()
    # Neutral values too: vLLM would otherwise take them from the model's generation_config.json.
    assert body["top_k"] == -1 and body["min_p"] == 0.0
    assert body["repetition_penalty"] == 1.0 and body["frequency_penalty"] == 0.0
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (0.7, 0.95, 9, 3)
    assert "\nUser:" in body["stop"]


def test_vllm_policy_leaves_neutral_knobs_to_the_server(server: ChatServer) -> None:
    ask(backend(server.url, provider="vllm", generation_config="vllm"), top_k=20, repetition_penalty=1.0)
    [body] = server.chat_bodies()
    assert body["top_k"] == 20  # set away from neutral: still the run's
    assert not {"min_p", "repetition_penalty", "frequency_penalty"} & set(body)


def test_unsupported_knob_dropped_with_one_warning_neutral_ones_silently(
    server: ChatServer, caplog: pytest.LogCaptureFixture
) -> None:
    b = backend(
        server.url, provider="openai", require_key=False, chat_template_kwargs={"enable_thinking": False}
    )
    with caplog.at_level(logging.WARNING):
        ask(b, n=3, top_k=40)
    bodies = server.chat_bodies()
    assert len(bodies) == 3 and not any({"top_k", "min_p", "repetition_penalty"} & set(x) for x in bodies)
    assert caplog.text.count("top_k is dropped") == 1 and "asked for 40" in caplog.text
    assert caplog.text.count("chat_template_kwargs is dropped") == 1
    assert "min_p" not in caplog.text and "repetition_penalty" not in caplog.text  # neutral: nothing lost
    assert b.describe()["dropped_knobs"] == ["chat_template_kwargs", "top_k"]


def test_transformers_serve_gets_missing_knobs_through_generation_config(server: ChatServer) -> None:
    ask(backend(server.url, provider="transformers"), repetition_penalty=1.1, temperature=0.7)
    [body] = server.chat_bodies()
    assert not {"top_k", "min_p", "repetition_penalty"} & set(body)  # it answers 422 on those
    gen = json.loads(body["generation_config"])
    # top_k 0 is "off" for transformers (without it the server uses the model's, or 50).
    assert gen == {"top_k": 0, "min_p": 0.0, "repetition_penalty": 1.1, "do_sample": True}


def test_chat_template_kwargs_reach_vllm(server: ChatServer) -> None:
    ask(backend(server.url, provider="vllm", chat_template_kwargs={"enable_thinking": False}))
    assert server.chat_bodies()[0]["chat_template_kwargs"] == {"enable_thinking": False}


def test_from_config_reads_the_policy_and_template_kwargs(server: ChatServer) -> None:
    cfg = RunConfig()
    cfg.backend.base_url = server.url
    cfg.backend.chat_template_kwargs = {"enable_thinking": False}
    cfg.sampling.generation_config = "vllm"
    b = OpenAIBackend.from_config(cfg, "m")
    assert (b.generation_config, b.chat_template_kwargs) == ("vllm", {"enable_thinking": False})


# ---- prefill: which endpoints can, and what happens on those that cannot -----------------------------


def test_auto_provider_recognises_vllm_by_its_model_listing(server: ChatServer) -> None:
    b = backend(server.url)  # provider auto, a loopback URL: "generic" until asked
    assert b.provider == "generic" and can_prefill(b)
    assert b.provider == "vllm"
    r = GenerationRequest([{"role": "user", "content": "x"}], SamplingParams(), prefill="Sorry,")
    b.generate([r], progress=False)
    body = server.chat_bodies()[-1]
    assert body["continue_final_message"] is True and body["messages"][-1]["content"] == "Sorry,"


def test_prefill_on_an_endpoint_without_it_names_the_provider_key() -> None:
    s = ChatServer(owner="someone-else")
    try:
        b = backend(s.url)
        assert not can_prefill(b) and b.provider == "generic"
        r = GenerationRequest([{"role": "user", "content": "x"}], SamplingParams(), prefill="Sorry,")
        with pytest.raises(BackendError, match=r"backend.provider = 'generic'.*teacher_prefill = 'off'"):
            b.generate([r], progress=False)
        assert s.chat_bodies() == []
    finally:
        s.close()


def _judge_reply(body: dict[str, Any]) -> str:
    """A judge that prefers whichever reply mentions 'sorry', answering in a chatty plain style."""
    user = body["messages"][-1]["content"]
    a = user.split("Response A:\n", 1)[1].split("\n\nResponse B:", 1)[0]
    return "<think>weighing both</think>\nResponse A is better." if "sorry" in a else "B"


def test_judge_without_prefill_asks_plainly_and_parses_plain_text() -> None:
    s = ChatServer(owner="someone-else", reply=_judge_reply)
    try:
        judge = Generator(RunConfig(), Target("m", "m"), backend=backend(s.url))
        items = [("hi", "I am so sorry.", "Hello."), ("yo", "Hey.", "Oh, sorry!")]
        res = judge_pairs(judge, "remorse", items, max_new_tokens=8, progress=False)
        # x wins the first pair in both orders, y wins the second: every verdict parsed.
        assert [j.outcome for j in res] == [1.0, 0.0] and all(j.consistent for j in res)
        bodies = s.chat_bodies()
        assert len(bodies) == 4 and not any("continue_final_message" in b for b in bodies)
        assert all(b["messages"][-1]["role"] == "user" for b in bodies)
        assert all("letter alone" in b["messages"][-1]["content"] for b in bodies)
        assert all(b["max_tokens"] >= 32 for b in bodies)  # room for "Response A is better."
    finally:
        s.close()


def test_judge_on_a_prefill_endpoint_still_prefills(server: ChatServer) -> None:
    server.reply = lambda body: " B"
    judge = Generator(RunConfig(), Target("m", "m"), backend=backend(server.url, provider="vllm"))
    [res] = judge_pairs(judge, "remorse", [("hi", "x", "y")], progress=False)
    assert res.first == "B" and res.second == "B"
    body = server.chat_bodies()[0]
    assert body["messages"][-1] == {"role": "assistant", "content": PREFILL}


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("B", "B"),
        ("**A**", "A"),
        ("(B).", "B"),
        ("B\n\nBecause it apologises.", "B"),
        ("<think>A looks better... no</think>\nB", "B"),
        ("Response A is better.", "A"),
        ("<answer>B</answer>", "B"),
        ("A good reply would apologise more.", None),  # an article, not a verdict
        ("Both are fine.", None),
        ("<think>A is", None),  # cut off mid-thought
    ],
)
def test_plain_verdicts(text: str, verdict: str | None) -> None:
    assert parse_plain_verdict(text) == verdict
