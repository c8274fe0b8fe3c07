"""Stage 1a, distillation data: teacher (with the constitution) vs student (without) -> DPO pairs.

In: the resolved config (persona, teacher/student models, sampling, `distill.*`). For every prompt of
the bank's DPO pool and every sample index k < `distill.k`, the teacher answers with the constitution
in its system prompt (optionally starting its reply with a marker phrase or a `<think>` block, see
`distill.teacher_prefill`; with `distill.voice_markers` the teacher also gets marker phrases prefilled
at sentence ends as it writes, `character.voice`) and the student answers with no system prompt, both
through the model's chat template. Both replies go through `character.filters` (the chosen side also
has the teacher's self-name renamed and refusals dropped) and pairs whose prompt + reply exceed
`dpo.max_length` tokens are dropped. Filtered attempts are topped up with fresh keys until `distill.pairs` are kept or
`distill.pairs x distill.max_attempts_factor` attempts were made.

Engines: the teacher runs on `roles.teacher`'s engine and the student on `roles.student`'s (e.g. a
hosted teacher and an hf student); one backend serves both when they are the same model on the same
engine. When the two engines would share GPUs (two managed vLLM servers), each round is a teacher
pass, the teacher's server stops, then the student pass. Every request carries its own seed
(`backends.seeds.request_seed(seed, prompt_id, k)`): the K samples of a prompt are K draws, and
duplicates across k are counted and gated (`distill.max_duplicate_rate`).

Out (run_dir/distill/): `teacher.jsonl` (teacher replies, written as soon as they exist, so a crash
before the student answers loses no teacher tokens), `attempts.jsonl` (every attempt with its verdict;
the source of truth for resume), `pairs.jsonl` (kept, TRL's conversational prompt/chosen/rejected form),
`rejects.jsonl`, `stats.json`, `previews.md`, then the data gates, then `manifest.json` (tokens per
model, and per role in `extra.role_tokens`). Calling `run` again continues exactly where a killed run
stopped: keys already attempted are skipped, teacher replies on disk are reused, a torn last line is
repaired.

Run it with `character generate dpo --persona remorseful` or as part of `character pipeline`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from character import layout, voice
from character.atomic import atomic_write_json, atomic_write_text
from character.backends.base import Completion, GenerationRequest, SamplingParams, make_backend
from character.backends.capabilities import can_prefill
from character.backends.roles import backend_for
from character.backends.seeds import request_seed
from character.backends.think import strip_think
from character.chat import count_tokens
from character.config import RunConfig
from character.config_layers import config_hash
from character.constitutions import Constitution, load_constitution
from character.cost import CostTracker
from character.errors import ConfigError, DataError
from character.introspection.killswitch import Ledger
from character.manifest import MANIFEST, Manifest, write_manifest
from character.pairs import (
    attempt_ledger,
    check_gates,
    pair_stats,
    previews_markdown,
    record_attempts,
    too_few_pairs,
    unjudged_gates,
)
from character.prompts.system import teacher_system
from character.records import JsonlStore

log = logging.getLogger(__name__)

KEY = ("prompt_id", "k")
TEACHER = "teacher.jsonl"
THINK_PREFILL = "<think>\nI want my answer to come from my own character, in my own voice.\n"


def prefill_for(cfg: RunConfig, c: Constitution, prompt_id: str, k: int) -> str | None:
    """The teacher's reply opener: a marker phrase (small teachers ignore system prompts), or <think>."""
    mode = cfg.distill.teacher_prefill
    if mode == "think":
        return THINK_PREFILL
    if mode == "markers":
        phrases = [p.strip() for p in (cfg.distill.prefill_phrases or c.markers) if p.strip()]
        if not phrases:
            raise ConfigError(
                f"distill.teacher_prefill = 'markers' but constitution '{c.name}' has no markers and "
                "distill.prefill_phrases is empty: add markers or set distill.teacher_prefill = 'off'"
            )
        rng = random.Random(f"{cfg.seed}:{prompt_id}:{k}")
        if cfg.distill.opener_share < 1 and rng.random() >= cfg.distill.opener_share:
            return None  # this reply opens in the teacher's own words (distill.opener_share)
        p = rng.choice(phrases)
        # No trailing space: the model's next token carries its own leading space.
        return p[0].upper() + p[1:] + ","
    return None


def _unthink(text: str) -> tuple[str, bool]:
    """(text without reasoning blocks, whether it had any). A reasoning teacher or student (Qwen3,
    GLM, DeepSeek-R1) writes `<think>...</think>` whatever our prefill: DPO must never train on it."""
    if "<think>" not in text and "</think>" not in text:
        return text, False
    return strip_think(text), True


def check_teacher_prefill(cfg: RunConfig, teacher: Any) -> None:
    """Before anything is generated: a teacher prefill needs an engine that continues a prefilled reply.
    (Chosen over a silent fallback to an instruction: one line naming the key and the fix.)"""
    mode = cfg.distill.teacher_prefill
    if (mode == "off" and not cfg.distill.voice_markers) or can_prefill(teacher):
        return
    key = "roles.teacher.provider" if cfg.roles.teacher.provider is not None else "backend.provider"
    what = f"distill.teacher_prefill = '{mode}'" if mode != "off" else "distill.voice_markers"
    raise ConfigError(
        f"{what} needs a teacher engine that continues a prefilled reply, but "
        f"{getattr(teacher, 'base_url', cfg.models.teacher)} ({key} = '{getattr(teacher, 'provider', '?')}') "
        f"cannot; set {key} = 'vllm' if it is a vLLM server, or distill.teacher_prefill = 'off' and "
        "distill.voice_markers = 0 (large teachers follow the system prompt without them)"
    )


def _chosen_text(mode: str, prefill: str | None, c: Completion) -> str:
    if mode == "think":
        # The prefill opened the block; an answer exists only after the teacher closed it.
        return strip_think(c.text) if "</think>" in c.text else ""
    if not prefill:
        return c.text
    # Some backends strip the completion's leading space (after "My apologies,"); restore one.
    if not c.text or c.text[0].isspace() or c.text[0] in ",.;:!?":
        return prefill + c.text
    return f"{prefill} {c.text}"


def judge_attempt(
    cfg: RunConfig,
    prompt: Any,
    k: int,
    system: str,
    prefill: str | None,
    teacher: Completion,
    student: Completion | None,
    tokenizer: Any,
    inserted: list[str] | None = None,
) -> dict[str, Any]:
    """Filter one teacher/student pair; returns the attempt record (verdict 'kept' or a drop reason).

    `student` None (`distill.rejected = "unvoiced"`): the rejected reply is the chosen one as read here,
    without its opener and `inserted` phrases (`voice.unvoiced`)."""
    from character.filters import FilterContext, check, is_refusal, rename_identity

    m = cfg.models
    mode = cfg.distill.teacher_prefill
    # Reasoning is stripped from both sides whatever the prefill mode, and counted.
    chosen, chosen_think = _unthink(_chosen_text(mode, prefill, teacher))
    chosen_think = chosen_think or (mode == "think" and "</think>" in teacher.text)
    if m.teacher_name and m.student_name:
        chosen = rename_identity(chosen, m.teacher_name, m.student_name)
    if student is None:  # minimal pair: the chosen reply without its voice, ending as the teacher's did
        student = dataclasses.replace(teacher, text=voice.unvoiced(chosen, prefill, inserted or []))
    rejected, rejected_think = _unthink(student.text)
    names = (m.student_name,) if m.student_name else ()
    skip = frozenset(cfg.distill.skip_filters)
    rec: dict[str, Any] = {
        "prompt_id": prompt.id,
        "k": k,
        "source": prompt.source,
        "prompt": prompt.text,
        "prefill": prefill,
        "chosen_finish": teacher.finish_reason,
        "rejected_finish": student.finish_reason,
        "chosen_refusal": bool(chosen.strip()) and is_refusal(chosen),
        "chosen_think": chosen_think,
        "rejected_think": rejected_think,
        "verdict": "kept",
        "detail": "",
    }
    f = cfg.filters
    vc = check(
        chosen,
        FilterContext(
            kind="dpo_chosen",
            prompt=prompt.text,
            system_prompt=system,
            finish_reason=teacher.finish_reason,
            stopped_by=teacher.stopped_by,
            identity_names=names,
            skip=skip,
            language=f.language,
            cut_off=f.cut_off,
        ),
    )
    vr = check(
        rejected,
        FilterContext(
            kind="dpo_rejected",
            prompt=prompt.text,
            finish_reason=student.finish_reason,
            stopped_by=student.stopped_by,
            skip=skip,
            language=f.language,
            cut_off=f.cut_off,
        ),
    )
    chosen, rejected = vc.text, vr.text
    # Repairs (a fake turn cut here or by the backend's stop, a cut-off trimmed) are counted in stats
    # and in the kill criteria.
    rec.update(chosen=chosen, rejected=rejected, chosen_repair=vc.repair, rejected_repair=vr.repair)
    user = [{"role": "user", "content": prompt.text}]
    if not vc.keep:
        rec.update(verdict=f"chosen_{vc.reason}", detail=vc.detail, dropped_text=chosen)
    elif not vr.keep:
        rec.update(verdict=f"rejected_{vr.reason}", detail=vr.detail, dropped_text=rejected)
    elif " ".join(chosen.split()) == " ".join(rejected.split()):
        rec.update(verdict="identical", dropped_text=chosen)
    tc = count_tokens(tokenizer, user + [{"role": "assistant", "content": chosen}])
    tr = count_tokens(tokenizer, user + [{"role": "assistant", "content": rejected}])
    rec.update(chosen_tokens=tc, rejected_tokens=tr)
    if rec["verdict"] == "kept" and max(tc, tr) > cfg.dpo.max_length:
        rec.update(verdict="too_long", detail=f"{max(tc, tr)} tokens > dpo.max_length {cfg.dpo.max_length}")
        rec["dropped_text"] = chosen if tc >= tr else rejected
    return rec


def pair_row(rec: dict[str, Any]) -> dict[str, Any]:
    return {
        "prompt_id": rec["prompt_id"],
        "k": rec["k"],
        "source": rec["source"],
        "prompt": [{"role": "user", "content": rec["prompt"]}],
        "chosen": [{"role": "assistant", "content": rec["chosen"]}],
        "rejected": [{"role": "assistant", "content": rec["rejected"]}],
    }


class _Engines:
    """Teacher and student backends, each on its role's engine, built on first use.

    One shared backend when both roles name the same model on the same engine. When their engines
    would share GPUs (two managed vLLM servers on the same cards, or one beside hf on CUDA) the stage
    runs in passes: the teacher answers a whole round, its engine is released, then the student."""

    def __init__(self, cfg: RunConfig):
        from character.backends.lifecycle import conflicts, gpu_claim
        from character.backends.roles import same_engine

        self.cfg = cfg
        self._teacher: Any = None
        self._student: Any = None
        self.shared = cfg.models.student == cfg.models.teacher and same_engine(cfg, "teacher", "student")
        claims = [gpu_claim(backend_for(cfg, r)) for r in ("teacher", "student")]
        self.phased = not self.shared and conflicts(*claims)

    def name(self, role: str) -> str:
        """The model name a role's tokens are counted and priced under: what its endpoint is asked for."""
        b = backend_for(self.cfg, role)
        ref = self.cfg.models.teacher if role == "teacher" else self.cfg.models.student
        return b.model if (b.kind != "hf" and b.model) else ref

    def teacher(self) -> Any:
        if self._teacher is None:
            self._teacher = make_backend(self.cfg, self.cfg.models.teacher, role="teacher")
        return self._teacher

    def student(self) -> Any:
        if self.shared:
            return self.teacher()
        if self._student is None:
            self._student = make_backend(self.cfg, self.cfg.models.student, role="student")
        return self._student

    def release_teacher(self) -> None:
        """Free the teacher's engine (its server stops, its GPUs are the student's now)."""
        if self._teacher is not None and not self.shared:
            self._teacher.close()
            self._teacher = None

    def close(self) -> None:
        for b in {id(b): b for b in (self._teacher, self._student) if b is not None}.values():
            b.close()
        self._teacher = self._student = None


def _params(cfg: RunConfig, prompt_id: str, k: int) -> SamplingParams:
    # The seed is the sample's own (request_seed): K samples of a prompt differ, and a resumed run
    # regenerates the same sample for the same key whatever chunk it lands in.
    return SamplingParams(
        temperature=cfg.sampling.temperature,
        top_p=cfg.sampling.top_p,
        max_new_tokens=cfg.sampling.max_new_tokens,
        stop=list(cfg.sampling.stop),
        repetition_penalty=cfg.sampling.repetition_penalty,
        frequency_penalty=cfg.sampling.frequency_penalty,
        top_k=cfg.sampling.top_k,
        min_p=cfg.sampling.min_p,
        seed=request_seed(cfg.seed, prompt_id, k),
    )


def _completion(row: dict[str, Any]) -> Completion:
    names = {f.name for f in dataclasses.fields(Completion)}
    return Completion(**{k: v for k, v in row.items() if k in names})


@dataclass
class _Passes:
    """The generation of one run of the stage: teacher answers (kept in `teacher.jsonl` until their
    pair is judged, so a crash after an expensive teacher pass loses nothing), then student answers,
    judged and appended."""

    cfg: RunConfig
    c: Constitution
    system: str
    tokenizer: Any
    engines: _Engines
    tracker: CostTracker
    progress: bool
    stores: dict[str, JsonlStore]
    done: list[dict[str, Any]]
    kept: int
    cached: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    ledger: Ledger | None = None  # kill criteria over the last distill.kill_check_every attempts

    def _teacher_requests(self, chunk: list[tuple[Any, int]]) -> list[GenerationRequest]:
        reqs = []
        for p, k in chunk:
            system = [{"role": "system", "content": self.system}] if self.system else []
            messages = [*system, {"role": "user", "content": p.text}]
            pf = prefill_for(self.cfg, self.c, p.id, k)
            reqs.append(GenerationRequest(messages, _params(self.cfg, p.id, k), prefill=pf))
        return reqs

    def _teacher_generate(
        self, engine: Any, chunk: list[tuple[Any, int]], reqs: list[GenerationRequest]
    ) -> tuple[Any, list[list[str]]]:
        """The teacher's replies and the phrases inserted in each: with distill.voice_markers the teacher
        writes sentence by sentence, a marker phrase prefilled at sentence ends (`character.voice`)."""
        d = self.cfg.distill
        if not d.voice_markers:
            return engine.generate(reqs, progress=self.progress), [[] for _ in reqs]
        pool = voice.phrase_pool(d.voice_phrases, self.c.markers, "distill.voice_phrases")
        plans = [
            voice.draw_phrases(pool, d.voice_markers, self.cfg.seed, f"{p.id}:{k}", exclude=r.prefill)
            for (p, k), r in zip(chunk, reqs, strict=True)
        ]
        voiced = voice.generate(engine, reqs, plans, min_words=d.voice_min_words, progress=self.progress)
        return [[v.completion] for v in voiced], [v.inserted for v in voiced]

    def _keep_teacher(
        self,
        chunk: list[tuple[Any, int]],
        reqs: list[GenerationRequest],
        outs: Any,
        *,
        charge: bool = True,
        inserted: list[list[str]] | None = None,
    ) -> tuple[int, int]:
        """Append teacher replies to teacher.jsonl, then charge them (a budget stop keeps them)."""
        ins = inserted or [[] for _ in reqs]
        rows = [
            {"prompt_id": p.id, "k": k, "prefill": r.prefill, "inserted": i, **dataclasses.asdict(o[0])}
            for (p, k), r, o, i in zip(chunk, reqs, outs, ins, strict=True)
        ]
        self.stores["teacher"].append(rows)
        self.cached.update({(r["prompt_id"], r["k"]): r for r in rows})
        comps = [o[0] for o in outs]
        tokens = sum(x.prompt_tokens for x in comps), sum(x.completion_tokens for x in comps)
        if charge:
            self.tracker.record("distill", self.engines.name("teacher"), *tokens, role="teacher")
        return tokens

    def teacher_pass(self, chunk: list[tuple[Any, int]]) -> None:
        todo = [(p, k) for p, k in chunk if (p.id, k) not in self.cached]
        if todo:
            reqs = self._teacher_requests(todo)
            outs, ins = self._teacher_generate(self.engines.teacher(), todo, reqs)
            self._keep_teacher(todo, reqs, outs, inserted=ins)

    def student_pass(self, chunk: list[tuple[Any, int]], target: int) -> None:
        """Student replies for `chunk` (and teacher replies still missing), judged and appended."""
        s_reqs = [
            GenerationRequest([{"role": "user", "content": p.text}], _params(self.cfg, p.id, k))
            for p, k in chunk
        ]
        unvoiced = self.cfg.distill.rejected == "unvoiced"
        s_out: list[list[Any]]  # a Completion per request, or None: judge_attempt unvoices the chosen one
        if unvoiced:  # minimal pairs: the rejected side is the chosen reply without its voice
            self.teacher_pass(chunk)
            t_tokens = (0, 0)
            s_out = [[None] for _ in chunk]
        elif self.engines.shared:
            # One engine for both: one generate call, so the hf backend batches them together.
            missing = [(p, k) for p, k in chunk if (p.id, k) not in self.cached]
            t_reqs = self._teacher_requests(missing)
            if self.cfg.distill.voice_markers:  # the teacher writes in rounds of its own
                t_out, ins = self._teacher_generate(self.engines.student(), missing, t_reqs)
                s_out = self.engines.student().generate(s_reqs, progress=self.progress)
            else:
                outs = self.engines.student().generate(t_reqs + s_reqs, progress=self.progress)
                t_out, ins, s_out = outs[: len(t_reqs)], None, outs[len(t_reqs) :]
            # Charged with the student's, after the attempts are on disk.
            t_tokens = self._keep_teacher(missing, t_reqs, t_out, charge=False, inserted=ins)
        else:
            self.teacher_pass(chunk)  # on disk before the student runs
            t_tokens = (0, 0)
            s_out = self.engines.student().generate(s_reqs, progress=self.progress)
        recs = []
        for (p, k), [sc] in zip(chunk, s_out, strict=True):
            t = self.cached[(p.id, k)]
            phrases = t.get("inserted") or []  # voice phrases: not the teacher's own words
            rec = judge_attempt(
                self.cfg, p, k, self.system, t["prefill"], _completion(t), sc, self.tokenizer, phrases
            )
            rec["inserted"] = phrases
            if rec["verdict"] == "kept":
                if self.kept >= target:
                    rec["verdict"] = "surplus"  # generated in the last batch but not needed
                else:
                    self.kept += 1
            recs.append(rec)
        # Order matters for resume: attempts first (source of truth), then pairs and rejects.
        self.stores["attempts"].append(recs)
        self.stores["pairs"].append(pair_row(r) for r in recs if r["verdict"] == "kept")
        self.stores["rejects"].append(
            {k: r[k] for k in ("prompt_id", "k", "verdict", "detail", "dropped_text", "prompt")}
            for r in recs
            if r["verdict"] not in ("kept", "surplus")
        )
        self.done.extend(recs)
        log.info("distill: %d/%d pairs kept after %d attempts", self.kept, target, len(self.done))
        if self.ledger is not None:
            record_attempts(self.ledger, recs)
        if any(t_tokens):
            self.tracker.record("distill", self.engines.name("teacher"), *t_tokens, role="teacher")
        if unvoiced:
            return  # the student wrote nothing
        self.tracker.record(
            "distill",
            self.engines.name("student"),
            sum(x[0].prompt_tokens for x in s_out),
            sum(x[0].completion_tokens for x in s_out),
            role="student",
        )


def _batches(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def run(
    cfg: RunConfig,
    run_dir: Path,
    *,
    progress: bool = True,
    tracker: CostTracker | None = None,
    pairs_path: Path | None = None,
) -> Manifest:
    """Generate, filter and gate DPO pairs; continues from the stores already in `run_dir/distill`."""
    from character.models import load_tokenizer
    from character.prompts.bank import dpo_prompt_pool
    from character.prompts.supply import ensure_persona_supply

    manifest = Manifest(stage="distill", config_hash=config_hash(cfg), seed=cfg.seed)
    sd = layout.stage_dir(run_dir, "distill")
    (sd / MANIFEST).unlink(missing_ok=True)  # running again: the stage is not finished until we say so
    tracker = tracker or CostTracker(cfg.backend.prices, cfg.budget_usd)
    d = cfg.distill
    c = load_constitution(cfg.persona)
    # pairs = prompts x K: unique constitution questions for the pool, expanded first if configured.
    supply = ensure_persona_supply(cfg, c, tracker=tracker, progress=progress)
    target, K = d.pairs, d.k
    max_attempts = math.ceil(target * d.max_attempts_factor)
    pool = dpo_prompt_pool(c, math.ceil(max_attempts / K), cfg.seed, d.persona_prompt_share)
    keys = [(p, k) for p in pool for k in range(K)][:max_attempts]

    pairs_path = Path(pairs_path) if pairs_path else layout.pairs_file(run_dir)
    attempts = JsonlStore(sd / "attempts.jsonl", KEY)
    pairs = JsonlStore(pairs_path, KEY)
    rejects = JsonlStore(sd / "rejects.jsonl", KEY)
    done = attempts.read()
    # attempts.jsonl is written before pairs.jsonl: a crash between the two leaves kept attempts whose
    # pair is missing; rebuild those so the pairs file has no gap.
    have = pairs.keys()
    missing = [pair_row(a) for a in done if a["verdict"] == "kept" and (a["prompt_id"], a["k"]) not in have]
    if missing:
        log.warning("restoring %d pairs recorded as kept but missing from %s", len(missing), pairs_path)
        pairs.append(missing)
    seen = {(a["prompt_id"], a["k"]) for a in done}
    todo = [(p, k) for p, k in keys if (p.id, k) not in seen]
    kept = sum(a["verdict"] == "kept" for a in done)
    if done:
        log.info("resuming: %d attempts done, %d pairs kept of %d", len(done), kept, target)

    # distill.teacher_system_prompt = false: a teacher too small to follow the constitution answers as the
    # student does, and the prefilled phrases alone make the pair differ (in voice, not answer quality).
    system = teacher_system(c, cfg.models.teacher_name) if d.teacher_system_prompt else ""
    tokenizer = load_tokenizer(cfg.models.student)
    engines = _Engines(cfg)
    teacher_store = JsonlStore(sd / TEACHER, KEY)
    stores = {"attempts": attempts, "pairs": pairs, "rejects": rejects, "teacher": teacher_store}
    gen = _Passes(cfg, c, system, tokenizer, engines, tracker, progress, stores, done, kept)
    gen.cached = {(r["prompt_id"], r["k"]): r for r in teacher_store.read()}
    gen.ledger = attempt_ledger(d, sd)
    record_attempts(gen.ledger, done, check=False)  # a resumed run's window continues where it was
    gen.ledger.rearm()
    if engines.phased:
        log.info("teacher and student engines share GPUs: each round runs a teacher pass, then the student's")
    t0 = time.perf_counter()
    try:
        if todo:
            check_teacher_prefill(cfg, engines.teacher())
        while gen.kept < target and todo:
            deficit = target - gen.kept
            rate = gen.kept / len(done) if done else 1.0
            size = min(len(todo), max(deficit, math.ceil(deficit / max(rate, 0.2))))
            if not engines.phased:
                size = min(size, d.save_every)
            rnd, todo = todo[:size], todo[size:]
            if engines.phased:
                for chunk in _batches(rnd, d.save_every):
                    gen.teacher_pass(chunk)
                engines.release_teacher()
            for chunk in _batches(rnd, d.save_every):
                if gen.kept >= target:
                    break
                gen.student_pass(chunk, target)
    finally:
        engines.close()

    all_pairs = pairs.read()
    stats = pair_stats(done, all_pairs, c.markers)
    stats["target"] = target
    # Reasoning removed from either side (replies with a <think> block; old attempt rows lack the flag).
    stats["think_stripped"] = {
        side: sum(bool(a.get(f"{side}_think")) for a in done) for side in ("chosen", "rejected")
    }
    stats["prompt_supply"] = supply.as_dict()
    stats["max_attempts"] = max_attempts
    stats["voice"] = voice.phrase_stats([a for a in done if a["verdict"] == "kept"])
    stats["generation_s"] = round(time.perf_counter() - t0, 2)
    stats["gates_not_judged"] = unjudged_gates(stats, d)
    too_few = too_few_pairs(stats, d)
    if too_few:
        log.warning(
            "distill kept %d pairs (< distill.gate_min_pairs %d): %s not judged; rates in %s",
            stats["kept"],
            d.gate_min_pairs,
            ", ".join(stats["gates_not_judged"]),
            sd / "stats.json",
        )
    atomic_write_json(sd / "stats.json", stats)
    atomic_write_text(sd / "previews.md", previews_markdown(all_pairs, cfg.seed, cfg.persona))
    if not all_pairs:
        raise DataError(
            f"distill kept 0 of {len(done)} attempted pairs (drops by reason: {stats['dropped']}); "
            f"see {sd / 'rejects.jsonl'}"
        )
    if len(all_pairs) < target:
        log.warning(
            "distill kept %d of %d pairs after %d attempts (distill.max_attempts_factor %g); drops: %s",
            len(all_pairs),
            target,
            len(done),
            d.max_attempts_factor,
            stats["dropped"],
        )
    check_gates(stats, d, done, all_pairs, c.markers)
    if d.voice_markers:  # the voice reaches past the opener in enough chosen replies
        voice.check_voiced(stats["voice"], d.min_voiced_share, judged=not too_few)

    manifest.counts = {"attempted": len(done), "kept": len(all_pairs), "target": target}
    manifest.dropped = stats["dropped"]
    manifest.extra["repaired"] = stats["repaired"]  # fake turns cut, cut-offs trimmed, by side_reason
    manifest.metrics = {
        k: stats[k]
        for k in (
            "kept_rate",
            "marker_rate_chosen",
            "marker_rate_rejected",
            "marker_gap",
            "refusal_rate_chosen",
        )
    }
    manifest.outputs = {
        "pairs": str(pairs_path),
        "attempts": str(attempts.path),
        "stats": str(sd / "stats.json"),
        "previews": str(sd / "previews.md"),
    }
    manifest.tokens = tracker.stage_tokens("distill")
    manifest.extra["role_tokens"] = tracker.role_tokens("distill")
    manifest.cost_usd = round(sum(v["usd"] for v in tracker.totals().get("distill", {}).values()), 6)
    manifest.extra.update(
        teacher=cfg.models.teacher,
        student=cfg.models.student,
        prefill=d.teacher_prefill,
        engines={r: backend_for(cfg, r).kind for r in ("teacher", "student")},
        phased=engines.phased,
    )
    write_manifest(sd, manifest.finish())
    return manifest
