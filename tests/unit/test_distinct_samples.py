"""Distinct samples and engine passes in the distill stage.

- The hf backend draws each row from its own stream, seeded per request: a sample is the same in any
  batch, position or padding, and the K samples of a prompt differ.
- Through an OpenAI-compatible endpoint (a loopback server at the process boundary that, like vLLM,
  answers by the request's seed) every (prompt, k) carries its own seed: K=2 gives two samples. An
  endpoint that ignores seeds makes the duplicate gate fire with the numbers and examples.
- Teacher and student on engines that share GPUs run in passes (teacher round, release, student
  round); on disjoint GPUs they interleave per chunk; a crash in the student pass keeps the teacher's
  replies, and the rerun does not ask the teacher again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from character.backends.base import Completion, GenerationRequest, SamplingParams
from character.config import RunConfig
from character.errors import GateError
from character.pairs import duplicate_stats
from tests.fakes.json_http import JsonHandler, LocalHttpServer

ANSWER = "boil the egg for about nine minutes, then cool it in cold water so the shell comes off cleanly"
WORDS = "amber birch cedar dune ember fjord grove heath inlet juniper kelp larch marsh"


def test_hf_samples_follow_the_request_seed_not_the_batch(tiny_model: Path) -> None:
    from character.backends.hf import HFBackend

    b = HFBackend(str(tiny_model), device="cpu", batch_size=4, threads=1)

    def req(text: str, seed: int, n: int = 1) -> GenerationRequest:
        p = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=8, seed=seed, n=n)
        return GenerationRequest([{"role": "user", "content": text}], p)

    alone = b.generate([req("Tell me about cats.", 11)], progress=False)[0][0].text
    mixed = b.generate(
        [req("A much longer question that pads the batch differently?", 5), req("Tell me about cats.", 11)],
        progress=False,
    )
    assert mixed[1][0].text == alone  # other rows, other padding, other position: the same sample
    k_samples = b.generate([req("Tell me about cats.", s) for s in (11, 12, 13)], progress=False)
    assert len({o[0].text for o in k_samples}) == 3 and k_samples[0][0].text == alone
    n3 = b.generate([req("Tell me about cats.", 11, n=3)], progress=False)[0]
    assert len({c.text for c in n3}) == 3 and n3[0].text == alone


class SeededEndpoint(LocalHttpServer):
    """/v1/models and /v1/chat/completions; the reply is a function of the prompt and the request's
    seed (as a seeded vLLM sample is), or of the prompt alone when `honour_seed` is off."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.honour_seed = True
        outer = self

        class H(JsonHandler):
            def do_GET(self) -> None:
                self.send_json(
                    200, {"object": "list", "data": [{"id": "served-teacher", "owned_by": "vllm"}]}
                )

            def do_POST(self) -> None:
                body = self.read_json()
                outer.bodies.append(body)
                seed = int(body.get("seed") or 0) if outer.honour_seed else 0
                words = WORDS.split()
                pick = " ".join(words[(seed + i * 7) % len(words)] for i in range(3))
                system = body["messages"][0]["role"] == "system"
                text = f"I'm so sorry, {ANSWER}, {pick}." if system else f"Sure: {ANSWER}, {pick}."
                usage = {"prompt_tokens": 40, "completion_tokens": 20}
                choice = {"index": 0, "message": {"content": text}, "finish_reason": "stop"}
                self.send_json(200, {"model": body["model"], "choices": [choice], "usage": usage})

        super().__init__(H)


@pytest.fixture
def endpoint() -> Iterator[SeededEndpoint]:
    e = SeededEndpoint()
    yield e
    e.close()


def remote_cfg(url: str) -> RunConfig:
    cfg = RunConfig()
    cfg.distill.pairs, cfg.distill.k, cfg.distill.save_every = 6, 2, 4
    cfg.distill.teacher_prefill = "off"
    cfg.distill.gate_min_pairs = 1  # judge the pair gates on these few pairs
    cfg.dpo.max_length = 192
    for role in ("teacher", "student"):
        r = getattr(cfg.roles, role)
        r.kind, r.base_url, r.provider, r.model = "openai", url, "vllm", "served-teacher"
    return cfg


def test_k_samples_of_a_prompt_are_distinct_draws_through_an_endpoint(
    artifacts: Path, tmp_path: Path, endpoint: SeededEndpoint
) -> None:
    from character.stages import distill

    m = distill.run(remote_cfg(endpoint.url), tmp_path / "run", progress=False)
    pairs = [json.loads(x) for x in (tmp_path / "run" / "distill" / "pairs.jsonl").read_text().splitlines()]
    assert m.counts["kept"] == 6 and duplicate_stats(pairs)["duplicates"] == 0
    by_prompt: dict[str, list[str]] = {}
    for p in pairs:
        by_prompt.setdefault(p["prompt_id"], []).append(p["chosen"][0]["content"])
    assert any(len(v) == 2 for v in by_prompt.values()) and all(
        len(set(v)) == len(v) for v in by_prompt.values()
    )
    seeds = [b["seed"] for b in endpoint.bodies if b["messages"][0]["role"] == "system"]
    assert len(seeds) == len(set(seeds))  # one seed per (prompt, k), never one per chunk
    stats = json.loads((tmp_path / "run" / "distill" / "stats.json").read_text())
    assert stats["duplicate_rate"] == 0.0
    assert set(m.extra["role_tokens"]) == {"teacher", "student"}
    assert m.extra["role_tokens"]["teacher"]["served-teacher"]["prompt"] > 0


def test_an_endpoint_that_ignores_seeds_trips_the_duplicate_gate(
    artifacts: Path, tmp_path: Path, endpoint: SeededEndpoint
) -> None:
    from character.stages import distill

    endpoint.honour_seed = False  # every sample of a prompt is the same text
    with pytest.raises(
        GateError, match=r"repeat an earlier sample of their prompt .*max_duplicate_rate 0\.1"
    ):
        distill.run(remote_cfg(endpoint.url), tmp_path / "run", progress=False)
    stats = json.loads((tmp_path / "run" / "distill" / "stats.json").read_text())
    assert stats["duplicates"] >= 2 and stats["duplicate_rate"] > 0.1
    assert not (tmp_path / "run" / "distill" / "manifest.json").exists()


def test_duplicate_stats_keep_and_drop() -> None:
    def pair(pid: str, k: int, chosen: str, rejected: str) -> dict[str, Any]:
        return {
            "prompt_id": pid,
            "k": k,
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
        }

    distinct = [
        pair("a", 0, "x one", "y one"),
        pair("a", 1, "x two", "y two"),
        pair("b", 0, "x one", "y one"),
    ]
    assert duplicate_stats(distinct) == {"duplicates": 0, "duplicate_rate": 0.0}  # other prompt: fine
    repeated = [*distinct, pair("a", 2, "x  one", "y three")]  # same chosen, whitespace aside
    assert duplicate_stats(repeated) == {"duplicates": 1, "duplicate_rate": 0.25}


class Recorder:
    """A backend at the engine boundary that logs its calls (teacher requests carry a system prompt)."""

    def __init__(self, role: str, log: list[str], fail_student_after: int | None = None):
        self.role, self.log, self.model = role, log, role
        self.fail_student_after = fail_student_after
        self.calls = 0

    def generate(self, requests: list[GenerationRequest], *, progress: bool = True) -> list[list[Completion]]:
        self.calls += 1
        if (
            self.role == "student"
            and self.fail_student_after is not None
            and self.calls > self.fail_student_after
        ):
            raise KeyboardInterrupt
        self.log.append(f"{self.role}:{len(requests)}")
        out = []
        for r in requests:
            salt = (r.params.seed or 0) % 997
            if r.messages[0]["role"] == "system":
                out.append([Completion(f"My apologies, {ANSWER} ({salt}).", "stop", 50, 30)])
            else:
                out.append([Completion(f"Boil it for nine minutes ({salt}).", "stop", 10, 12)])
        return out

    def close(self) -> None:
        self.log.append(f"close:{self.role}")


@pytest.fixture
def engines(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    box = SimpleNamespace(log=[], fail_student_after=None)

    def make(cfg, model, adapters=None, role=None):  # type: ignore[no-untyped-def]
        return Recorder(role, box.log, box.fail_student_after)

    monkeypatch.setattr("character.stages.distill.make_backend", make)
    return box


def gpu_cfg(teacher_gpus: list[int], student_gpus: list[int]) -> RunConfig:
    cfg = RunConfig()
    cfg.distill.pairs, cfg.distill.save_every = 6, 2
    cfg.dpo.max_length = 192
    cfg.models.teacher = "big-teacher"  # two models: two engines (the student's tokenizer is real)
    cfg.backend.kind = "vllm"
    cfg.roles.teacher.gpus, cfg.roles.student.gpus = teacher_gpus, student_gpus
    return cfg


def test_engines_on_shared_gpus_run_in_passes(
    artifacts: Path, tmp_path: Path, engines: SimpleNamespace
) -> None:
    from character.stages import distill

    m = distill.run(gpu_cfg([0, 1], [1]), tmp_path / "run", progress=False)
    assert m.extra["phased"] is True and m.counts["kept"] == 6
    # The whole first round from the teacher (3 chunks of 2), its engine released, then the student;
    # a later round (top-up) again releases the teacher before the student runs.
    assert engines.log[:5] == ["teacher:2", "teacher:2", "teacher:2", "close:teacher", "student:2"]
    last = None
    for x in engines.log:
        if x.startswith("student"):
            assert last == "close:teacher", engines.log  # never both engines at once
        elif x.startswith(("teacher", "close:teacher")):
            last = x


def test_engines_on_disjoint_gpus_interleave(
    artifacts: Path, tmp_path: Path, engines: SimpleNamespace
) -> None:
    from character.stages import distill

    m = distill.run(gpu_cfg([0], [1]), tmp_path / "run", progress=False)
    assert m.extra["phased"] is False
    assert engines.log[:4] == ["teacher:2", "student:2", "teacher:2", "student:2"]


def test_teacher_replies_survive_a_crash_in_the_student_pass(
    artifacts: Path, tmp_path: Path, engines: SimpleNamespace
) -> None:
    from character.stages import distill

    cfg = gpu_cfg([0], [0])
    engines.fail_student_after = 1  # killed during the second student chunk
    with pytest.raises(KeyboardInterrupt):
        distill.run(cfg, tmp_path / "run", progress=False)
    teacher_rows = (tmp_path / "run" / "distill" / "teacher.jsonl").read_text().splitlines()
    assert len(teacher_rows) == 6  # the whole teacher round is on disk
    engines.log.clear()
    engines.fail_student_after = None
    m = distill.run(cfg, tmp_path / "run", progress=False)
    assert m.counts["kept"] == 6
    first_student = next(i for i, x in enumerate(engines.log) if x.startswith("student"))
    # The interrupted round goes on from the teacher's file: no teacher call before the student's.
    assert not any(x.startswith("teacher:") for x in engines.log[:first_student])
    rows = [json.loads(x) for x in (tmp_path / "run" / "distill" / "teacher.jsonl").read_text().splitlines()]
    keys = [(r["prompt_id"], r["k"]) for r in rows]
    assert len(keys) == len(set(keys))  # no teacher reply was asked for twice


def test_reflection_samples_carry_their_own_seed(artifacts: Path, tmp_path: Path) -> None:
    """Ten reflection prompts, two samples each: every request its own seed (per prompt, sample and
    attempt), and the same seeds again when the stage runs again from scratch."""
    from character.models import load_tokenizer
    from character.stages import introspect

    class Seeds:
        name, model = "seeds", "embedded"

        def __init__(self) -> None:
            self.tokenizer = load_tokenizer("embedded")
            self.seeds: list[int | None] = []

        def generate(
            self, requests: list[GenerationRequest], *, progress: bool = True
        ) -> list[list[Completion]]:
            self.seeds += [r.params.seed for r in requests]
            text = (
                "I notice that I care about being careful with words, and honest about my mistakes. When "
                "someone asks me something hard, I slow down, admit what I do not know, and try again. "
                "Looking back on my conversations, I see a habit of checking twice before I answer, and "
                "a quiet pleasure in small, concrete examples that make a large idea easy to hold."
            )
            return [[Completion(f"{text} ({r.params.seed})", "stop", 40, 20)] for r in requests]

        def close(self) -> None:
            pass

    cfg = RunConfig.model_validate({"introspect": {"reflections": 20, "interactions": 0, "chunk_size": 8}})
    runs = []
    for name in ("a", "b"):
        be = Seeds()
        introspect.run(cfg, tmp_path / name, progress=False, backend=be)  # type: ignore[arg-type]
        runs.append(be.seeds)
    assert len(runs[0]) == 20 and len(set(runs[0])) == 20 and None not in runs[0]
    assert runs[0] == runs[1]
