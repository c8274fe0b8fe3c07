"""`Completion.stopped_by` from OpenAI-compatible servers (#16 defines it, the server path fills it):
the stop string the client cut at, or the one the server names (vLLM's `stop_reason`), never a stop
token id, and never a fake-turn marker inside an open code block. The endpoint is a loopback server at
the process boundary returning scripted choices."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from character.backends.base import GenerationRequest, SamplingParams
from character.backends.openai import OpenAIBackend
from tests.fakes.json_http import JsonHandler, LocalHttpServer


class Scripted(LocalHttpServer):
    def __init__(self) -> None:
        self.choice: dict[str, Any] = {}
        outer = self

        class H(JsonHandler):
            def do_POST(self) -> None:
                body = self.read_json()
                reply = {
                    "model": body["model"],
                    "choices": [{"index": 0, **outer.choice}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 7},
                }
                self.send_json(200, reply)

        super().__init__(H)


@pytest.fixture
def endpoint() -> Iterator[Scripted]:
    s = Scripted()
    yield s
    s.close()


def one(endpoint: Scripted, content: str, finish: str, stop_reason: Any = None) -> Any:
    endpoint.choice = {"message": {"content": content}, "finish_reason": finish, "stop_reason": stop_reason}
    b = OpenAIBackend("m", base_url=endpoint.url, provider="vllm", verify_model=False)
    req = GenerationRequest(
        [{"role": "user", "content": "hi"}], SamplingParams(max_new_tokens=7, stop=["\n\n"])
    )
    [[c]] = b.generate([req], progress=False)
    return c


def test_stopped_by_from_a_server(endpoint: Scripted) -> None:
    c = one(endpoint, "Sure, here it is.\nUser: and now me", "stop")  # the server did not cut: we do
    assert (c.text, c.stopped_by, c.finish_reason) == ("Sure, here it is.", "\nUser:", "stop")
    c = one(endpoint, "First paragraph.", "stop", "\n\n")  # vLLM cut and says where
    assert (c.text, c.stopped_by) == ("First paragraph.", "\n\n")
    c = one(endpoint, "Done.", "stop", 2)  # a stop token id is EOS-like: no stop string
    assert c.stopped_by is None
    c = one(endpoint, "Cut by length", "length")
    assert (c.stopped_by, c.finish_reason) == (None, "length")
    code = "Here is a log:\n```\nUser: hello\nAssistant: hi\n```\nThat is all."
    c = one(endpoint, code, "stop")  # a marker inside an open code block is code, not a new turn
    assert c.text == code and c.stopped_by is None
