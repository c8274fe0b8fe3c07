"""Stops that respect code: a fake-turn marker inside an open code fence never ends a reply.

The pure rule (`character.backends.stops`) is tested on text; the hf backend's stopping criterion and
its completion parsing run with the embedded model's real tokenizer and transformers' real
`StopStringCriteria` on token rows of known text (no model forward pass needed to know what a row says).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from character.backends.base import FAKE_TURN_STOPS, Completion, GenerationRequest, SamplingParams
from character.backends.stops import continuation, cut_at_stop, find_stop, server_cut
from character.filters import FilterContext, check
from character.filters.fences import ends_open, is_open_at, scan, without_code

LOG = "Here is a transcript:\n\n```text\nUser: my order never arrived\nAssistant: sorry, checking\n```\n"


def test_fences_closed_open_and_indented() -> None:
    closed, open_at = scan(LOG + "Done.")
    assert len(closed) == 1 and open_at == -1
    assert not ends_open(LOG) and ends_open("Code:\n```python\ndef f():")
    assert ends_open("Steps:\n1. Run:\n   ```bash\n   make test")  # a fence indented in a list item
    assert not ends_open("Use ```inline``` ticks mid-line")  # not a fence line
    assert not ends_open("~~~\nx\n~~~") and ends_open("~~~\nx\n```")  # closed only by its own kind
    assert is_open_at(LOG, LOG.index("User:")) and not is_open_at(LOG, len(LOG))
    assert "never arrived" not in without_code(LOG) and "transcript" in without_code(LOG)


def test_marker_inside_an_open_fence_does_not_end_the_reply() -> None:
    stops = list(FAKE_TURN_STOPS)
    text = LOG + "That is how it goes.\nUser: thanks!"
    i, s = find_stop(text, stops)  # type: ignore[misc]
    assert s == "\nUser:" and i == text.rindex("\nUser:")
    assert cut_at_stop(text, stops) == (LOG + "That is how it goes.", "\nUser:")
    # Inside an open block only: nothing ends the reply.
    assert find_stop("Log:\n```\nUser: hi\nAssistant: hello", stops) is None


def test_other_stops_end_the_reply_anywhere_and_eos_is_not_reported() -> None:
    text = "```\ncode\n\n<|im_end|>more"
    assert cut_at_stop(text, ["\n\n"]) == ("```\ncode", "\n\n")
    assert cut_at_stop(text, ["<|im_end|>"], eos="<|im_end|>") == ("```\ncode\n\n", None)
    # A prefill before `start` is never cut, but opens a block the reply is inside.
    assert find_stop("```\nUser: hi", ["\nUser:"], start=4) is None
    assert find_stop("Sure.\nUser: hi", ["\nUser:"], start=5) == (5, "\nUser:")


def test_server_cut_keep_continue_or_drop() -> None:
    assert server_cut("Fine answer.", "stop", "\nUser:").action == "keep"
    assert server_cut("Log:\n```\nUser: hi", "length", None).action == "keep"  # cut_off handles it
    cut = server_cut("Log:\n```\nUser: hi", "stop", "\nAssistant:")
    assert cut.action == "continue" and "open code block" in cut.reason
    assert server_cut("Log:\n```\nUser: hi", "stop", None).action == "drop"  # EOS in code: cannot resume
    assert (
        continuation("Sure,", " log:\n```\nUser: hi", "\nAssistant:")
        == "Sure, log:\n```\nUser: hi\nAssistant:"
    )


def test_filters_count_a_backend_stop_at_a_marker_as_a_repaired_fake_turn() -> None:
    text = "I'm so sorry, nine minutes is right; cool the egg in iced water so the shell comes away."
    v = check(text, FilterContext(kind="dpo_chosen", stopped_by="\nUser:"))
    assert v.keep and v.repair == "hallucinated_turn" and v.text == text and not v.repaired
    v = check(text, FilterContext(kind="dpo_chosen", stopped_by="\n\n"))  # a user stop: nothing to count
    assert v.keep and v.repair is None
    v = check(text, FilterContext(kind="dpo_chosen", stopped_by="\nUser:", repair=False))
    assert v.reason == "hallucinated_turn"
    v = check("Sure!", FilterContext(kind="reflection", stopped_by="\nAssistant:"))
    assert v.reason == "hallucinated_turn" and "left" in v.detail


def test_a_reply_ending_inside_an_open_code_block_is_dropped() -> None:
    v = check("My apologies, here:\n\n```python\ndef reverse(s):\n    return s[::-1]", FilterContext())
    assert v.reason == "cut_off" and "open code block" in v.detail
    assert check("My apologies, here:\n\n```python\nx = 1\n```\nDone.", FilterContext()).keep


# --- the hf backend -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hf(embedded_model: Path):  # type: ignore[no-untyped-def]
    from character.backends.hf import HFBackend
    from character.models import load_tokenizer

    tok = load_tokenizer("embedded")
    # The criterion and the parser need the tokenizer only; a model object is never called here.
    return HFBackend("embedded", tokenizer=tok, model_obj=_NoModel())


class _NoModel:
    def to(self, *a: object) -> _NoModel:
        return self

    def eval(self) -> _NoModel:
        return self

    def parameters(self):  # type: ignore[no-untyped-def]
        import torch

        yield torch.zeros(1)


def _ids(tok, prompt: str, text: str):  # type: ignore[no-untyped-def]
    import torch

    p = tok.encode(prompt, add_special_tokens=False)
    return p, torch.tensor([p + tok.encode(text, add_special_tokens=False)])


def test_hf_stopping_criterion_goes_on_inside_code_and_stops_outside(hf) -> None:  # type: ignore[no-untyped-def]
    from character.backends.base import default_stops

    tok = hf.tokenizer
    stops = tuple(s for s in default_stops([], tok.eos_token) if s != tok.eos_token)
    prompt = "Q: show a log\nA:"
    inside, ids_in = _ids(tok, prompt, " Sure:\n```text\nUser:")
    crit = hf._stop_criteria(stops, len(inside), [None])
    assert bool(crit[0].inner(ids_in, None)[0])  # transformers' criterion sees "\nUser:" at the end ...
    assert not bool(crit(ids_in, None)[0])  # ... and generation goes on: it is inside a code block
    outside, ids_out = _ids(tok, prompt, " Sure, nine minutes.\nUser:")
    crit = hf._stop_criteria(stops, len(outside), [None])
    assert bool(crit(ids_out, None)[0])
    # A prefill that opened the block counts: the marker after it is still code.
    pre, ids_pre = _ids(tok, prompt, "\nUser:")
    assert not bool(hf._stop_criteria(stops, len(pre), ["Sure:\n```text"])(ids_pre, None)[0])


def test_hf_completion_reports_the_stop_string(hf) -> None:  # type: ignore[no-untyped-def]
    tok = hf.tokenizer
    stops = [*FAKE_TURN_STOPS, tok.eos_token]
    req = GenerationRequest([{"role": "user", "content": "x"}], SamplingParams(max_new_tokens=64))

    def parse(text: str, prefill: str | None = None) -> Completion:
        return hf._completion(tok.encode(text, add_special_tokens=False), 5, stops, req, prefill)

    c = parse("Nine minutes.\nUser: thanks")
    assert (c.text, c.stopped_by, c.finish_reason) == ("Nine minutes.", "\nUser:", "stop")
    c = parse("Log:\n```\nUser: hi\n```\nDone.\nAssistant: more")
    assert c.text == "Log:\n```\nUser: hi\n```\nDone." and c.stopped_by == "\nAssistant:"
    c = parse("Nine minutes." + tok.eos_token)
    assert c.text == "Nine minutes." and c.stopped_by is None and c.finish_reason == "stop"
    c = parse(" the rest\nUser: hi", prefill="Log:\n```")  # inside the block the prefill opened
    assert c.stopped_by is None and "User: hi" in c.text
