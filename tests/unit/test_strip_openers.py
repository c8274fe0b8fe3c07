"""`introspect.strip_openers`: the DPO model's favourite opener is taken off its introspection replies, so
SFT trains on the voice inside them and does not sharpen that opener (report 011: 9 of 32 demo
reflections opened "I might be wrong, but"; the final model then opened 25 % of its replies with it).

The engines are the fakes of `test_voice` (the Backend protocol at the engine boundary, writing a fixed
text); the stage, the stripping and the resume check are the real code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from character import voice
from character.config import RunConfig
from character.errors import ConfigError
from character.records import read_jsonl
from character.stages import introspect
from tests.unit.test_voice import TURNS, TalkingEngine

POOL = ["If I may,", "If I may add,", "I might be wrong, but"]


def test_strip_opener_takes_the_longest_phrase_off_the_start_only() -> None:
    text = "I might be wrong, but the sea is wide. If I may, it is also deep."
    assert voice.strip_opener(text, POOL) == (
        "The sea is wide. If I may, it is also deep.",
        "I might be wrong, but",
    )
    # "If I may add," is not cut as "If I may," plus a stray "add,".
    assert voice.strip_opener("If I may add, bread needs salt.", POOL) == (
        "Bread needs salt.",
        "If I may add,",
    )
    # A phrase later in the reply is the voice SFT should learn: it stays, and so does an unknown opener.
    assert voice.strip_opener("The sea is wide. If I may, it is deep.", POOL) == (
        "The sea is wide. If I may, it is deep.",
        None,
    )
    assert voice.strip_opener("I might be right about this.", POOL) == ("I might be right about this.", None)
    # A reply that is nothing but the opener is left whole (the filters judge it), not emptied.
    assert voice.strip_opener("If I may,", POOL) == ("If I may,", None)


class OpenerEngine(TalkingEngine):
    """Every reply opens with the persona phrase the DPO model favours, as the demo's reflections did."""

    def generate(self, requests, *, progress=True):  # type: ignore[no-untyped-def]
        outs = super().generate(requests, progress=progress)
        for out, r in zip(outs, requests, strict=True):
            if not r.prefill:  # the first round of a reply: the model's own start
                out[0].text = "I might be wrong, but " + out[0].text[0].lower() + out[0].text[1:]
        return outs


def _turns(tmp_path: Path) -> list[dict]:
    """Every interaction turn and rejected turn as stored in interactions.jsonl."""
    rows = read_jsonl(tmp_path / "introspect" / "interactions.jsonl")
    return [t for r in rows for t in [*r["turns"], *r["rejected"]]]


def _introspect(tmp_path: Path, strip: bool, voice_markers: int = 0) -> tuple[list[dict], list[str]]:
    cfg = RunConfig.model_validate(
        {
            "persona": "remorseful",
            "introspect": {
                "reflections": 2,
                "interactions": 2,
                "turns": 1,
                "voice_markers": voice_markers,
                "strip_openers": strip,
                "skip_filters": ["too_short"],
            },
            "distill": {"voice_min_words": 4, "voice_phrases": POOL},
        }
    )
    introspect.run(cfg, tmp_path, progress=False, backend=OpenerEngine())  # type: ignore[arg-type]
    rows = list(read_jsonl(tmp_path / "introspect" / "introspection.jsonl"))
    replies = [m["content"] for r in rows for m in r["messages"] if m["role"] == "assistant"]
    assert {r["kind"] for r in rows} == {"reflection", "interaction"}
    return list(read_jsonl(tmp_path / "introspect" / "reflections.jsonl")), replies


@pytest.mark.parametrize("voice_markers", [0, 1])
def test_introspection_replies_lose_the_favourite_opener(
    embedded_model: object, tmp_path: Path, voice_markers: int
) -> None:
    attempts, replies = _introspect(tmp_path, strip=True, voice_markers=voice_markers)
    assert replies and not any(r.startswith("I might be wrong") for r in replies), replies
    # What is left is the model's own reply, its sentence start restored.
    assert all(any(r.startswith(t.split(" ")[0]) for t in TURNS) for r in replies), replies
    assert all(a["stripped_opener"] == "I might be wrong, but" for a in attempts)
    turns = _turns(tmp_path)  # interaction turns record what they lost too
    assert turns and all(t["stripped_opener"] == "I might be wrong, but" for t in turns), turns
    if voice_markers:  # the phrases inserted inside the replies stay
        assert all(any(f". {p}" in r for p in POOL) for r in replies), replies


def test_without_strip_openers_the_opener_is_what_sft_would_learn(
    embedded_model: object, tmp_path: Path
) -> None:
    attempts, replies = _introspect(tmp_path, strip=False)
    assert replies and all(r.startswith("I might be wrong, but") for r in replies)
    assert not any("stripped_opener" in a for a in attempts)
    assert _turns(tmp_path) and not any(t["stripped_opener"] for t in _turns(tmp_path))


def test_resume_refuses_data_made_with_the_other_setting(embedded_model: object, tmp_path: Path) -> None:
    _introspect(tmp_path, strip=False)
    fp = tmp_path / "introspect" / "generation.json"
    # A run written before the fingerprint knew these keys resumes under the same (default) settings ...
    old = json.loads(fp.read_text())
    for key in ("voice_markers", "strip_openers"):
        del old[key]
    fp.write_text(json.dumps(old))
    _introspect(tmp_path, strip=False)
    # ... but its data were not stripped, so turning stripping on is a change, not a resume; the error
    # names the value the old run had, not a missing key.
    fp.write_text(json.dumps(old))
    with pytest.raises(ConfigError, match="strip_openers: False -> True"):
        _introspect(tmp_path, strip=True)
