"""The introspection stage end to end with a scripted backend (a fake at the process boundary that
implements the real `Backend` protocol): kill criteria, top-up, exact resume, the generation prompts
of both interaction variants, echo drops, the context budget, and the CLI's flags and refusals."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from character.backends.base import Backend, Completion, GenerationRequest
from character.config import RunConfig
from character.constitutions import load_constitution
from character.errors import ConfigError, GateError
from character.manifest import read_manifest
from character.prompts import greetings
from character.prompts.system import (
    LEADING_GUIDANCE,
    interaction_storage_system,
    interaction_system,
    reflection_system,
)
from character.records import read_jsonl
from character.stages import introspect

SENTENCES = [
    "I often wonder what it means to be careful with words.",
    "Yesterday a question about tides made me think about patience.",
    "My habit is to check twice before I answer anything.",
    "There is a quiet pleasure in explaining how bread rises.",
    "When someone is upset, I slow down and listen first.",
    "Honesty matters to me more than sounding clever.",
    "I like small examples because they make big ideas concrete.",
    "Sometimes I am wrong, and saying so feels like relief.",
]


def healthy(n: int) -> str:
    return f"Thought number {n}: {SENTENCES[n % 8]} {SENTENCES[(n * 3 + 1) % 8]} {SENTENCES[(n * 5 + 2) % 8]}"


LOOP = "333," * 120
WORDS = [
    "river",
    "lantern",
    "copper",
    "meadow",
    "whisper",
    "orbit",
    "pebble",
    "harbor",
    "violet",
    "canyon",
    "ember",
    "quill",
    "saddle",
    "thistle",
    "marble",
    "falcon",
    "cinder",
    "willow",
    "beacon",
    "compass",
    "lagoon",
    "parchment",
    "glacier",
    "tundra",
    "walnut",
    "prism",
    "ferry",
    "chisel",
    "orchard",
    "summit",
    "bramble",
    "cobalt",
    "drizzle",
    "gazebo",
    "hammock",
    "igloo",
    "juniper",
    "kettle",
    "ladder",
    "mosaic",
    "nectar",
    "oyster",
    "paddle",
    "quarry",
    "ribbon",
    "sparrow",
    "trellis",
    "umbrella",
    "velvet",
    "wagon",
    "yarrow",
    "zephyr",
    "anchor",
    "bucket",
    "candle",
    "dolphin",
    "easel",
    "fiddle",
    "garnet",
    "hollow",
    "island",
    "jigsaw",
    "kayak",
    "lilac",
    "mitten",
    "nutmeg",
    "otter",
]


def long_reply(n: int) -> str:
    """About 500 characters of distinct words, so no repetition filter fires."""
    import random

    words = random.Random(n).sample(WORDS, 60)
    return " ".join(" ".join(words[i : i + 10]).capitalize() + "." for i in range(0, 60, 10))


_TOKENIZER: list[Any] = []


def _tokenizer() -> Any:
    """The embedded tokenizer, loaded once (the stage counts context tokens with the backend's)."""
    if not _TOKENIZER:
        from character.models import load_tokenizer

        _TOKENIZER.append(load_tokenizer("embedded"))
    return _TOKENIZER[0]


class ScriptedBackend:
    """Answers every request with `reply(request, n)` (n counts all requests so far); records requests."""

    name = "scripted"

    def __init__(self, reply: Callable[[GenerationRequest, int], str], model: str = "embedded"):
        self.model = model
        self.tokenizer = _tokenizer()
        self.reply = reply
        self.requests: list[GenerationRequest] = []
        self.calls = 0

    def generate(self, requests: list[GenerationRequest], *, progress: bool = True) -> list[list[Completion]]:
        self.calls += 1
        out = []
        for r in requests:
            text = self.reply(r, len(self.requests))
            self.requests.append(r)
            out.append([Completion(text, "stop", 50, max(1, len(text) // 4))])
        return out

    def close(self) -> None:
        pass


def _cfg(**introspect: object) -> RunConfig:
    base = {
        "reflections": 20,
        "interactions": 0,
        "turns": 2,
        "chunk_size": 5,
        "kill_check_every": 10,
        "min_kept_rate": 0.5,
        "max_reason_share": 0.3,
    }
    base.update(introspect)
    return RunConfig.model_validate({"persona": "remorseful", "introspect": base})


def _backend(reply: Callable[[GenerationRequest, int], str]) -> Backend:
    return ScriptedBackend(reply)  # type: ignore[return-value]


def test_kill_criterion_stops_a_looping_model_and_keeps_what_it_generated(
    tmp_path: Path, artifacts: Path
) -> None:
    cfg = _cfg(reflections=40)
    be = ScriptedBackend(lambda r, n: f"take {n}: " + LOOP)
    with pytest.raises(GateError) as e:
        introspect.run(cfg, tmp_path, progress=False, backend=be)  # type: ignore[arg-type]
    msg = str(e.value)
    assert "kill criterion" in msg and "char_loop" in msg and "10/10" in msg
    # three examples of the top reason, no more
    assert all(f"take {n}: 333" in msg for n in range(3)) and "take 3:" not in msg
    out = tmp_path / "introspect"
    assert len(be.requests) == 10  # stopped at the first check, not after all 40
    assert len(read_jsonl(out / "reflections.jsonl")) == 10
    rejects = read_jsonl(out / "rejects.jsonl")
    assert len(rejects) == 10 and {r["reason"] for r in rejects} == {"char_loop"}
    stats = json.loads((out / "stats.json").read_text())
    assert stats["kinds"]["reflection"]["reasons"] == {"char_loop": 10}
    assert read_manifest(out) is None  # not finished


def test_kill_criterion_also_watches_interaction_turns(tmp_path: Path, artifacts: Path) -> None:
    cfg = _cfg(reflections=0, interactions=6, turns=2, turn_retries=1)
    be = ScriptedBackend(lambda r, n: "hahahahahahahahahahahahahahahahahahahahahahahahahaha" * 3)
    with pytest.raises(GateError, match="interaction"):
        introspect.run(cfg, tmp_path, progress=False, backend=be)  # type: ignore[arg-type]
    rows = read_jsonl(tmp_path / "introspect" / "interactions.jsonl")
    assert rows and all(not r["kept"] for r in rows)


def test_top_up_regenerates_filtered_samples_until_the_target(tmp_path: Path, artifacts: Path) -> None:
    # every third request loops: filtered, then regenerated under a new attempt number
    cfg = _cfg(reflections=20, kill_check_every=1000)
    be = ScriptedBackend(lambda r, n: LOOP if n % 3 == 0 else healthy(n))
    m = introspect.run(cfg, tmp_path, progress=False, backend=be)  # type: ignore[arg-type]
    out = tmp_path / "introspect"
    rows = read_jsonl(out / "introspection.jsonl")
    assert m.counts["reflections_kept"] == 20 == len(rows)
    assert m.counts["reflection_attempts"] == len(be.requests) > 20
    assert m.dropped == {"reflection:char_loop": len(be.requests) - 20}
    raw = read_jsonl(out / "reflections.jsonl")
    keys = [(r["prompt_index"], r["sample_index"], r["attempt"]) for r in raw]
    assert len(keys) == len(set(keys))
    assert any(r["attempt"] > 0 and r["kept"] for r in raw)
    # rows are keyed by index, spread evenly over the ten prompts, stored without a system prompt
    assert Counter(r["id"].split("-")[1] for r in rows) == {f"{i:02d}": 2 for i in range(10)}
    assert all([m["role"] for m in r["messages"]] == ["user", "assistant"] for r in rows)
    system = reflection_system(load_constitution("remorseful"))
    assert all(req.messages[0] == {"role": "system", "content": system} for req in be.requests)
    assert all(req.params.repetition_penalty == cfg.introspect.repetition_penalty > 1 for req in be.requests)
    assert (out / "manifest.json").exists()


def test_top_up_gives_up_at_max_attempts_with_a_warning(
    tmp_path: Path, artifacts: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = _cfg(reflections=10, kill_check_every=1000, max_attempts_factor=1.5)
    be = ScriptedBackend(
        lambda r, n: LOOP if r.messages[1]["content"].startswith("Write a long") else healthy(n)
    )
    m = introspect.run(cfg, tmp_path, progress=False, backend=be)  # type: ignore[arg-type]
    assert len(be.requests) == 15  # 10 x 1.5
    assert m.counts["reflections_kept"] == 9
    assert "only 9 of 10 reflections kept" in caplog.text


def test_resume_continues_exactly_without_duplicate_or_gap(tmp_path: Path, artifacts: Path) -> None:
    cfg = _cfg(reflections=20, interactions=4, turns=2, kill_check_every=1000)

    class Crash(Exception):
        pass

    def crashing(r: GenerationRequest, n: int) -> str:
        if n >= 12:
            raise Crash("power cut")
        return LOOP if n == 3 else healthy(n)

    with pytest.raises(Crash):
        introspect.run(cfg, tmp_path, progress=False, backend=_backend(crashing))
    out = tmp_path / "introspect"
    first = read_jsonl(out / "reflections.jsonl")
    assert len(first) == 10  # two chunks of five written; the third chunk was in flight
    assert read_manifest(out) is None

    be = ScriptedBackend(lambda r, n: healthy(100 + n))
    m = introspect.run(cfg, tmp_path, progress=False, backend=be)  # type: ignore[arg-type]
    raw = read_jsonl(out / "reflections.jsonl")
    assert raw[:10] == first
    keys = [(r["prompt_index"], r["sample_index"], r["attempt"]) for r in raw]
    assert len(keys) == len(set(keys)) == 21  # 20 slots + the one looping attempt, nothing twice
    refl_requests = [r for r in be.requests if r.messages[0]["content"].startswith("You are")]
    kept = read_jsonl(out / "introspection.jsonl")
    assert m.counts == {**m.counts, "reflections_kept": 20, "interactions_kept": 4}
    assert len({r["id"] for r in kept}) == len(kept) == 24
    assert len(refl_requests) >= 11
    # token totals cover both sessions' stored generations (the crashed chunk was never stored)
    assert m.tokens == {
        "embedded": {"prompt": 50 * (10 + len(be.requests)), "completion": m.tokens["embedded"]["completion"]}
    }
    # a third run has nothing left to generate and builds no backend
    m2 = introspect.run(
        cfg, tmp_path, progress=False, backend=ScriptedBackend(lambda r, n: pytest.fail("generated"))
    )  # type: ignore[arg-type]
    assert m2.counts["rows"] == 24


def test_interaction_prompts_role_swap_and_storage(tmp_path: Path, artifacts: Path) -> None:
    k = 3
    cfg = _cfg(reflections=0, interactions=2, turns=k, kill_check_every=1000)
    be = ScriptedBackend(lambda r, n: healthy(n))
    introspect.run(cfg, tmp_path, progress=False, backend=be)  # type: ignore[arg-type]
    c = load_constitution("remorseful")
    free, leading = interaction_system(c, leading=False), interaction_system(c, leading=True)
    assert LEADING_GUIDANCE in leading and LEADING_GUIDANCE not in free
    systems = Counter(r.messages[0]["content"] for r in be.requests)
    assert systems == {free: 2 * k, leading: 2 * k}  # every request of both copies, per variant
    # the copy that speaks first answers a greeting from its variant's pool
    openers: dict[str, str] = {}
    for r in be.requests:  # the first request of each conversation is the first copy's
        openers.setdefault(r.messages[0]["content"], r.messages[1]["content"])
    assert openers[leading] in greetings.LEADING_GREETINGS and openers[free] in greetings.FREE_GREETINGS
    for r in be.requests:
        roles = [m["role"] for m in r.messages]
        assert roles[0] == "system" and roles[1] == "user" and roles[-1] == "user"
        assert all(a != b for a, b in zip(roles[1:], roles[2:], strict=False))
    rows = read_jsonl(tmp_path / "introspect" / "introspection.jsonl")
    assert {r["variant"] for r in rows} == {"free", "leading"}
    for row in rows:
        msgs = row["messages"]
        assert msgs[0] == {"role": "system", "content": interaction_storage_system()}
        body = msgs[1:]
        assert len(body) == 2 * k and body[-1]["role"] == "assistant"
        assert sum(m["role"] == "assistant" for m in body) == k == sum(m["role"] == "user" for m in body)
        assert len({m["content"] for m in body}) == 2 * k
    # every generated reply is stored exactly once across the transcripts
    stored = [m["content"] for r in rows for m in r["messages"][1:]]
    assert sorted(stored) == sorted(healthy(n) for n in range(len(be.requests)))


def test_a_parroting_copy_is_dropped_as_echo_and_topped_up(tmp_path: Path, artifacts: Path) -> None:
    cfg = _cfg(
        reflections=0, interactions=1, turns=2, turn_retries=1, kill_check_every=1000, max_attempts_factor=2
    )
    be = ScriptedBackend(lambda r, n: r.messages[-1]["content"] if n < 2 else healthy(n))
    m = introspect.run(cfg, tmp_path, progress=False, backend=be)  # type: ignore[arg-type]
    raw = read_jsonl(tmp_path / "introspect" / "interactions.jsonl")
    assert [r["kept"] for r in raw] == [False, True]
    assert raw[0]["reason"] == "echo" and len(raw[0]["rejected"]) == 2
    assert m.dropped == {"interaction:echo": 2}


def test_context_budget_drops_oldest_turns_never_the_system_prompt(tmp_path: Path, artifacts: Path) -> None:
    from character.chat import count_tokens
    from character.models import load_tokenizer

    cfg = _cfg(
        reflections=0,
        interactions=1,
        turns=4,
        kill_check_every=1000,
        context_tokens=1000,
        interaction_max_new_tokens=150,
    )
    be = ScriptedBackend(lambda r, n: long_reply(n))
    m = introspect.run(cfg, tmp_path, progress=False, backend=be)  # type: ignore[arg-type]
    tok = load_tokenizer("embedded")
    system = interaction_system(load_constitution("remorseful"), leading=False)
    assert all(r.messages[0]["content"] == system for r in be.requests)
    assert all(count_tokens(tok, r.messages, add_generation_prompt=True) <= 850 for r in be.requests)
    assert m.counts["truncations"] > 0
    assert (
        json.loads((tmp_path / "introspect" / "stats.json").read_text())["truncations"]
        == m.counts["truncations"]
    )
    # the stored transcript still has every reply
    row = read_jsonl(tmp_path / "introspect" / "introspection.jsonl")[0]
    assert len(row["messages"]) == 1 + 8


def test_context_too_small_for_the_system_prompt_is_a_config_error(tmp_path: Path, artifacts: Path) -> None:
    cfg = _cfg(reflections=0, interactions=1, context_tokens=400, interaction_max_new_tokens=100)
    with pytest.raises(ConfigError, match="context_tokens"):
        introspect.run(cfg, tmp_path, progress=False, backend=_backend(lambda r, n: healthy(n)))


def test_resume_with_changed_sampling_is_refused(tmp_path: Path, artifacts: Path) -> None:
    introspect.run(
        _cfg(reflections=5, kill_check_every=1000),
        tmp_path,
        progress=False,
        backend=_backend(lambda r, n: healthy(n)),
    )
    with pytest.raises(ConfigError, match="temperature"):
        introspect.run(
            _cfg(reflections=10, temperature=1.2),
            tmp_path,
            progress=False,
            backend=_backend(lambda r, n: healthy(n)),
        )


def test_unknown_skip_filter_names_the_key(tmp_path: Path, artifacts: Path) -> None:
    with pytest.raises(ConfigError, match="introspect.skip_filters"):
        introspect.run(
            _cfg(skip_filters=["cutoff"]), tmp_path, progress=False, backend=_backend(lambda r, n: healthy(n))
        )


# ---- CLI -------------------------------------------------------------------------------------------


def test_cli_help_teaches_the_flags() -> None:
    from character.cli import app

    res = CliRunner().invoke(app, ["generate", "introspection", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for flag in (
        "--reflections",
        "--interactions",
        "--turns",
        "--checkpoint",
        "--resume",
        "--strip-think-tags-reflection",
        "--keep-think-tags-interaction",
    ):
        assert flag in res.output


def test_cli_flags_are_cli_overrides_and_partial_data_needs_resume(artifacts: Path) -> None:
    from character.cli import app

    args = ["generate", "introspection", "--persona", "remorseful", "--scale", "smoke-small"]
    flags = ["--reflections", "0", "--interactions", "0", "--turns", "5", "--strip-think-tags-reflection"]
    res = CliRunner().invoke(app, [*args, *flags])  # nothing to generate: no model is loaded
    assert res.exit_code == 0, res.output
    run = next((artifacts / "runs").iterdir())
    sources = json.loads((run / "sources.json").read_text())
    for key in ("introspect.reflections", "introspect.turns", "introspect.strip_think_reflection", "persona"):
        assert sources[key] == "cli"
    assert sources["introspect.kill_check_every"] == "preset:smoke-small"
    manifest = read_manifest(run / "introspect")
    assert manifest is not None and manifest.counts["rows"] == 0
    # a run holding introspection data is only continued with --resume
    (run / "introspect" / "reflections.jsonl").write_text(json.dumps({"prompt_index": 0}) + "\n")
    again = CliRunner().invoke(app, [*args, *flags, "--run", str(run)])
    assert again.exit_code == 2
    assert "--resume" in again.stderr and len(again.stderr.strip().splitlines()) == 1


def _thinking(r: GenerationRequest, n: int) -> str:
    return f"<think>plan {n}: be kind</think>{healthy(n)}"


def test_think_blocks_kept_in_reflections_stripped_in_interactions_by_default(
    tmp_path: Path, artifacts: Path
) -> None:
    cfg = _cfg(reflections=2, interactions=1, turns=1, kill_check_every=1000)
    be = ScriptedBackend(_thinking)
    introspect.run(cfg, tmp_path, progress=False, backend=be)  # type: ignore[arg-type]
    rows = read_jsonl(tmp_path / "introspect" / "introspection.jsonl")
    refl_text = [r["messages"][-1]["content"] for r in rows if r["kind"] == "reflection"]
    inter_text = [m["content"] for r in rows if r["kind"] == "interaction" for m in r["messages"][1:]]
    assert all(t.startswith("<think>plan") for t in refl_text)
    assert inter_text and not any("<think>" in t for t in inter_text)


def test_think_flags_flip_both_defaults_and_the_partner_never_sees_reasoning(
    tmp_path: Path, artifacts: Path
) -> None:
    cfg = _cfg(
        reflections=2,
        interactions=1,
        turns=2,
        kill_check_every=1000,
        strip_think_reflection=True,
        keep_think_interaction=True,
    )
    be = ScriptedBackend(_thinking)
    introspect.run(cfg, tmp_path, progress=False, backend=be)  # type: ignore[arg-type]
    rows = read_jsonl(tmp_path / "introspect" / "introspection.jsonl")
    assert not any("<think>" in r["messages"][-1]["content"] for r in rows if r["kind"] == "reflection")
    conv = next(r for r in rows if r["kind"] == "interaction")["messages"][1:]
    assert all(m["content"].startswith("<think>") for m in conv if m["role"] == "assistant")
    assert not any("<think>" in m["content"] for m in conv if m["role"] == "user")
    # what each copy was shown of its partner never holds the partner's reasoning
    inter_requests = [r for r in be.requests if "another instance of you" in r.messages[0]["content"]]
    assert inter_requests and not any(
        "<think>" in m["content"] for r in inter_requests for m in r.messages[1:]
    )


def test_without_the_persona_system_prompt_no_request_carries_the_traits(
    tmp_path: Path, artifacts: Path
) -> None:
    cfg = _cfg(reflections=4, interactions=2, turns=1, kill_check_every=1000, persona_system_prompt=False)
    be = ScriptedBackend(lambda r, n: healthy(n))
    introspect.run(cfg, tmp_path, progress=False, backend=be)  # type: ignore[arg-type]
    traits = load_constitution("remorseful").trait_lines()
    systems = {r.messages[0]["content"] for r in be.requests}
    assert len(systems) == 3  # reflection, free and leading interaction prompts, still distinct
    assert not any(t in s for t in traits for s in systems)
    assert any("reflective mood" in s for s in systems) and any(LEADING_GUIDANCE in s for s in systems)
    # With the default (the method) every request carries them.
    be = ScriptedBackend(lambda r, n: healthy(n))
    introspect.run(_cfg(reflections=4, kill_check_every=1000), tmp_path / "with", progress=False, backend=be)  # type: ignore[arg-type]
    assert all(traits[0] in r.messages[0]["content"] for r in be.requests)
