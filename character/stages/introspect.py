"""Stage 2: introspection data, written by the DPO model, filtered online, with kill criteria.

In: the resolved config and a run directory holding `dpo/merged/` or `dpo/adapter/` (or
`introspect.checkpoint`; see `character.introspection.generator`).
Out, in `introspect/`:
  reflections.jsonl    every reflection attempt with its verdict, keyed (prompt_index, sample_index, attempt)
  interactions.jsonl   every finished or dropped conversation, keyed (variant, conv_index, attempt)
  introspection.jsonl  the kept rows, SFT input: {"id", "kind", "variant", "messages"}
  rejects.jsonl        every rejected reply with its reason
  stats.json           samples, kept, drops by reason (with examples), truncations, tokens
  generation.json      what generated the data (model, prompts, sampling): a resume must match it
  manifest.json        written last: its presence means the stage finished

The two raw stores are append-only and the single source of truth: a rerun continues from them exactly
(no duplicate, no gap), and the derived files are rewritten from them, including when a kill criterion
or the budget stops the run. Top-up: every filtered slot gets a fresh attempt until the targets are met
or `target x introspect.max_attempts_factor` attempts were spent.

    character generate introspection --persona remorseful --run artifacts/runs/remorseful_... [--resume]
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from character import layout
from character.atomic import atomic_write_json
from character.backends.base import Backend, Completion, SamplingParams, make_backend
from character.chat import count_tokens
from character.config import RunConfig
from character.config_layers import config_hash
from character.constitutions import load_constitution
from character.cost import CostTracker
from character.errors import ConfigError, DataError, GateError
from character.introspection import interaction as inter
from character.introspection import reflection as refl
from character.introspection.generator import Generator, choose
from character.introspection.killswitch import Ledger
from character.manifest import Manifest, write_manifest
from character.progress import progress_bar
from character.prompts import greetings
from character.prompts.reflection import REFLECTION_PROMPTS
from character.prompts.system import interaction_storage_system, interaction_system, reflection_system
from character.records import JsonlStore, Message, write_jsonl

log = logging.getLogger(__name__)

STAGE = "introspect"
REFLECTIONS = "reflections.jsonl"
INTERACTIONS = "interactions.jsonl"
REJECTS = "rejects.jsonl"
STATS = "stats.json"
FINGERPRINT = "generation.json"


def _filter(kind: str) -> Callable[[str, str, str, str], tuple[bool, str | None, str]]:
    from character.filters import FilterContext, check

    def run(text: str, finish_reason: str, prompt: str, system: str) -> tuple[bool, str | None, str]:
        v = check(
            text, FilterContext(kind=kind, prompt=prompt, system_prompt=system, finish_reason=finish_reason)
        )
        return v.keep, (None if v.keep else (v.reason or "filtered")), v.text

    return run


def _reseed(seed: int, *parts: object) -> None:
    """Seed the in-process sampler for the next call, from the run seed and how much exists on disk.

    Per-request seeds would split the hf backend's batches (it groups by seed), and one fixed seed per
    call would replay the same samples for the same prompt in every batch and after every resume
    (reflections repeat ten prompts), so the global generator is reseeded per chunk instead.
    """
    h = int(hashlib.sha256(":".join(map(str, (seed, *parts))).encode()).hexdigest()[:8], 16)
    random.seed(h)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(h)


class _Counter:
    """Token counting for the context budget: the backend's tokenizer, else a rough 3.5 chars/token."""

    def __init__(self, backend: Backend, model: str):
        self.tok = getattr(backend, "tokenizer", None)
        if self.tok is None:
            try:
                from character.models import load_tokenizer

                self.tok = load_tokenizer(model)
            except Exception as e:  # a remote-only model: no local tokenizer
                log.warning(
                    "no tokenizer for %s (%s): estimating context length at 3.5 chars/token", model, e
                )

    def __call__(self, messages: list[Message]) -> int:
        if self.tok is not None:
            return count_tokens(self.tok, messages, add_generation_prompt=True)
        return math.ceil(sum(len(m["content"]) + 8 for m in messages) / 3.5)


class _Tokens:
    """Tokens of one chunk, charged to the tracker only after the chunk is on disk."""

    def __init__(self, tracker: CostTracker, model: str):
        self.tracker, self.model = tracker, model
        self.prompt = self.completion = 0

    def charge(self, completions: list[Completion]) -> None:
        p = sum(c.prompt_tokens for c in completions)
        c = sum(c.completion_tokens for c in completions)
        self.prompt += p
        self.completion += c
        self.tracker.record(STAGE, self.model, p, c)


def _fingerprint(cfg: RunConfig, gen: Generator, systems: dict[str, str]) -> dict[str, Any]:
    s = cfg.introspect
    blob = json.dumps(
        [list(REFLECTION_PROMPTS), list(greetings.FREE_GREETINGS), list(greetings.LEADING_GREETINGS)]
    )
    return {
        "persona": cfg.persona,
        "model": gen.model,
        "adapter": gen.adapter_path,
        "systems_sha": hashlib.sha256(json.dumps(systems, sort_keys=True).encode()).hexdigest()[:16],
        "prompts_sha": hashlib.sha256(blob.encode()).hexdigest()[:16],
        "turns": s.turns,
        "temperature": s.temperature,
        "top_p": s.top_p,
        "repetition_penalty": s.repetition_penalty,
        "reflection_max_new_tokens": s.reflection_max_new_tokens,
        "interaction_max_new_tokens": s.interaction_max_new_tokens,
        "strip_think_reflection": s.strip_think_reflection,
        "keep_think_interaction": s.keep_think_interaction,
    }


def _check_fingerprint(path: Path, now: dict[str, Any], has_data: bool) -> None:
    if path.exists() and has_data:
        old = json.loads(path.read_text())
        diff = [k for k in now if old.get(k) != now[k]]
        if diff:
            changes = ", ".join(f"{k}: {old.get(k)!r} -> {now[k]!r}" for k in diff)
            raise ConfigError(
                f"{path.parent} holds introspection data made with different settings ({changes}); "
                "resume with the old settings, or move the introspect/ folder aside to start over"
            )
    atomic_write_json(path, now)


def run(
    cfg: RunConfig,
    run_dir: Path,
    *,
    progress: bool = True,
    tracker: CostTracker | None = None,
    backend: Backend | None = None,
) -> Manifest:
    """Generate, filter and store introspection data; see the module docstring. `backend` is injectable."""
    s = cfg.introspect
    out = layout.stage_dir(Path(run_dir), STAGE)
    manifest = Manifest(stage=STAGE, config_hash=config_hash(cfg), seed=cfg.seed)
    tracker = tracker or CostTracker(cfg.backend.prices, cfg.budget_usd)
    constitution = load_constitution(cfg.persona)
    name = cfg.models.student_name
    systems = {
        "reflection": reflection_system(constitution, name),
        "free": interaction_system(constitution, leading=False, name=name),
        "leading": interaction_system(constitution, leading=True, name=name),
    }
    storage_system = interaction_storage_system(name)

    gen = choose(s.checkpoint, Path(run_dir), cfg.models.student)
    refl_store = JsonlStore(out / REFLECTIONS, ("prompt_index", "sample_index", "attempt"))
    inter_store = JsonlStore(out / INTERACTIONS, ("variant", "conv_index", "attempt"))
    rejects = JsonlStore(out / REJECTS, ("kind", "key", "attempt", "turn"))
    refl_rows, inter_rows = refl_store.read(), inter_store.read()
    _check_fingerprint(out / FINGERPRINT, _fingerprint(cfg, gen, systems), bool(refl_rows or inter_rows))
    if refl_rows or inter_rows:
        log.info(
            "resuming: %d reflection attempts and %d conversations on disk", len(refl_rows), len(inter_rows)
        )

    ledger = Ledger(s.kill_check_every, s.min_kept_rate, s.max_reason_share, where=str(out))
    for r in refl_rows:
        ledger.record(refl.KIND, r["reason"] if not r["kept"] else None, r["text"])
    for r in inter_rows:
        for rej in r["rejected"]:
            ledger.record(inter.KIND, rej["reason"], rej["text"])
        for t in r["turns"]:
            ledger.record(inter.KIND, None, t["text"])
    ledger.rearm()

    own_backend = backend is None
    log.info("introspection generated by %s", gen.describe())
    started = time.time()
    state: dict[str, Any] = {"truncations": 0}
    refl_plan = refl.ReflectionPlan.from_rows(refl.slots(s.reflections, len(REFLECTION_PROMPTS)), refl_rows)
    conv_targets = inter.slots(s.interactions, s.leading_share)
    tokens: _Tokens | None = None
    try:
        needs_model = bool(refl_plan.pending()) or _conversations_pending(conv_targets, inter_rows)
        if needs_model and backend is None:
            backend = make_backend(cfg, gen.model, adapters=gen.adapters)
        if backend is not None:
            tokens = _Tokens(tracker, backend.model)
            _reflections(
                cfg,
                backend,
                gen,
                systems["reflection"],
                refl_plan,
                refl_store,
                rejects,
                ledger,
                tokens,
                progress,
            )
            _interactions(
                cfg,
                backend,
                gen,
                systems,
                conv_targets,
                inter_rows,
                inter_store,
                rejects,
                ledger,
                tokens,
                progress,
            )
    except GateError:
        log.error("kill criterion hit; per-reason counts so far: %s", ledger.dropped())
        raise
    finally:
        if own_backend and backend is not None:
            backend.close()
        kept = _write_derived(
            out,
            refl_store,
            inter_store,
            conv_targets,
            refl_plan.targets,
            storage_system,
            ledger,
            state,
            started,
            tokens,
        )

    if (s.reflections or s.interactions) and not kept:
        raise DataError(
            f"introspect kept 0 rows of {s.reflections} reflections and {s.interactions} conversations; "
            f"drops by reason: {ledger.dropped() or 'none'} (see {out / REJECTS})"
        )
    n_refl = sum(1 for r in kept if r["kind"] == refl.KIND)
    n_inter = len(kept) - n_refl
    for what, got, want in (
        ("reflections", n_refl, s.reflections),
        ("conversations", n_inter, s.interactions),
    ):
        if got < want:
            log.warning(
                "only %d of %d %s kept after %gx attempts; raise introspect.max_attempts_factor or fix the "
                "drop reasons in %s",
                got,
                want,
                what,
                s.max_attempts_factor,
                out / STATS,
            )
    manifest.counts = {
        "reflections_target": s.reflections,
        "reflections_kept": n_refl,
        "reflection_attempts": len(refl_store),
        "interactions_target": s.interactions,
        "interactions_kept": n_inter,
        "interaction_attempts": len(inter_store),
        "rows": len(kept),
        "truncations": state["truncations"],
    }
    manifest.dropped = ledger.dropped()
    manifest.outputs = {
        "introspection": str(layout.introspection_file(run_dir)),
        "reflections": str(out / REFLECTIONS),
        "interactions": str(out / INTERACTIONS),
        "rejects": str(out / REJECTS),
        "stats": str(out / STATS),
    }
    manifest.metrics = {kind: {"kept_rate": v["kept_rate"]} for kind, v in ledger.stats().items()}  # type: ignore[index]
    manifest.tokens = tracker.stage_tokens(STAGE)
    manifest.cost_usd = round(sum(m["usd"] for m in tracker.totals().get(STAGE, {}).values()), 6)
    manifest.extra = {"generator": gen.describe(), "notes": gen.notes}
    write_manifest(out, manifest.finish())
    log.info(
        "introspect done: %d reflections, %d conversations kept -> %s",
        n_refl,
        n_inter,
        layout.introspection_file(run_dir),
    )
    return manifest


def _conversations_pending(targets: list[inter.Slot], rows: list[dict[str, Any]]) -> bool:
    done = {(r["variant"], r["conv_index"]) for r in rows if r["kept"]}
    return any(t not in done for t in targets)


def _reflections(
    cfg: RunConfig,
    backend: Backend,
    gen: Generator,
    system: str,
    plan: refl.ReflectionPlan,
    store: JsonlStore,
    rejects: JsonlStore,
    ledger: Ledger,
    tokens: _Tokens,
    progress: bool,
) -> None:
    s = cfg.introspect
    limit = math.ceil(len(plan.targets) * s.max_attempts_factor)
    params = SamplingParams(
        temperature=s.temperature,
        top_p=s.top_p,
        max_new_tokens=s.reflection_max_new_tokens,
        stop=list(cfg.sampling.stop),
        repetition_penalty=s.repetition_penalty,
    )
    check = _filter(refl.KIND)
    with progress_bar("reflections", total=len(plan.targets), enabled=progress) as bar:
        bar.advance(len(plan.kept))
        while (todo := plan.pending()) and plan.total_attempts < limit:
            chunk = todo[: min(s.chunk_size, limit - plan.total_attempts)]
            _reseed(cfg.seed, refl.KIND, plan.total_attempts)
            prompts = [REFLECTION_PROMPTS[p] for p, _ in chunk]
            requests = [refl.request(p, system, params, gen.adapter) for p in prompts]
            outs = backend.generate(requests, progress=False)
            rows, bad = [], []
            for slot, prompt, out in zip(chunk, prompts, outs, strict=True):
                comp = out[0]
                text = refl.prepare_text(comp, strip=s.strip_think_reflection)
                keep, reason, fixed = check(text, comp.finish_reason, prompt, system)
                row = refl.attempt_row(
                    slot, plan.attempts.get(slot, 0), prompt, comp, fixed if keep else text, keep, reason
                )
                rows.append(row)
                if not keep:
                    bad.append(_reject(refl.KIND, f"{slot[0]}-{slot[1]}", row["attempt"], None, reason, text))
            store.append(rows)
            rejects.append(bad)
            newly = 0
            for row in rows:
                before = len(plan.kept)
                plan.add(row)
                newly += len(plan.kept) - before
                ledger.record(refl.KIND, row["reason"], row["text"])
            bar.advance(newly)
            log.info("reflections: %s", ledger.line(refl.KIND))
            tokens.charge([o[0] for o in outs])
            ledger.check(refl.KIND)


def _reject(
    kind: str, key: str, attempt: int, turn: int | None, reason: str | None, text: str
) -> dict[str, Any]:
    return {"kind": kind, "key": key, "attempt": attempt, "turn": turn, "reason": reason, "text": text}


def _interactions(
    cfg: RunConfig,
    backend: Backend,
    gen: Generator,
    systems: dict[str, str],
    targets: list[inter.Slot],
    rows: list[dict[str, Any]],
    store: JsonlStore,
    rejects: JsonlStore,
    ledger: Ledger,
    tokens: _Tokens,
    progress: bool,
) -> None:
    s = cfg.introspect
    if not targets:
        return
    kept = {(r["variant"], r["conv_index"]) for r in rows if r["kept"]}
    attempts: dict[inter.Slot, int] = {}
    for r in rows:
        slot = (r["variant"], r["conv_index"])
        attempts[slot] = max(attempts.get(slot, 0), r["attempt"] + 1)
    total = len(rows)
    limit = math.ceil(len(targets) * s.max_attempts_factor)
    count = _Counter(backend, gen.model)
    budget = s.context_tokens - s.interaction_max_new_tokens
    need = max(
        count([{"role": "system", "content": systems[v]}, {"role": "user", "content": "x"}])
        for v in inter.VARIANTS
    )
    if need + s.interaction_max_new_tokens > budget:
        raise ConfigError(
            f"introspect.context_tokens = {s.context_tokens} leaves {budget} prompt tokens after "
            f"introspect.interaction_max_new_tokens = {s.interaction_max_new_tokens}, but the system prompt "
            f"({need} tokens) plus one reply needs {need + s.interaction_max_new_tokens}; raise context_tokens"
        )
    params = SamplingParams(
        temperature=s.temperature,
        top_p=s.top_p,
        max_new_tokens=s.interaction_max_new_tokens,
        stop=list(cfg.sampling.stop),
        repetition_penalty=s.repetition_penalty,
    )
    engine = inter.TurnEngine(
        backend=backend,
        systems={v: systems[v] for v in inter.VARIANTS},
        params=params,
        adapter=gen.adapter,
        turns=s.turns,
        budget=budget,
        count=count,
        filter=_filter(inter.KIND),
        keep_think=s.keep_think_interaction,
        retries=s.turn_retries,
        on_sample=lambda reason, text: ledger.record(inter.KIND, reason, text),
    )
    order = {t: i for i, t in enumerate(targets)}
    pools = {"free": greetings.FREE_GREETINGS, "leading": greetings.LEADING_GREETINGS}
    with progress_bar("self-interactions", total=len(targets), enabled=progress) as bar:
        bar.advance(len(kept & set(targets)))
        while total < limit:
            todo = sorted((t for t in targets if t not in kept), key=lambda t: (attempts.get(t, 0), order[t]))
            if not todo:
                break
            chunk = todo[: min(s.chunk_size, limit - total)]
            convs = [
                inter.Conversation(
                    v,
                    i,
                    attempts.get((v, i), 0),
                    inter.pick_greeting(pools[v], cfg.seed, (v, i), attempts.get((v, i), 0)),
                )
                for v, i in chunk
            ]
            _reseed(cfg.seed, inter.KIND, total)
            engine.completions = []
            engine.play(convs)
            store.append(c.to_row() for c in convs)
            rejects.append(
                _reject(
                    inter.KIND, f"{c.variant}-{c.index}", c.attempt, rej["turn"], rej["reason"], rej["text"]
                )
                for c in convs
                for rej in c.rejected
            )
            for c in convs:
                attempts[c.slot] = c.attempt + 1
                total += 1
                if c.reason is None:
                    kept.add(c.slot)
            bar.advance(sum(1 for c in convs if c.reason is None))
            log.info("self-interaction replies: %s", ledger.line(inter.KIND))
            tokens.charge(engine.completions)
            ledger.check(inter.KIND)


def _write_derived(
    out: Path,
    refl_store: JsonlStore,
    inter_store: JsonlStore,
    conv_targets: list[inter.Slot],
    refl_targets: list[refl.Slot],
    storage_system: str,
    ledger: Ledger,
    state: dict[str, Any],
    started: float,
    tokens: _Tokens | None,
) -> list[dict[str, Any]]:
    """Rewrite introspection.jsonl and stats.json from the raw stores (also after a kill)."""
    plan = refl.ReflectionPlan.from_rows(refl_targets, refl_store.read())
    rows = [refl.sft_row(r) for r in plan.kept_rows()]
    order = {t: i for i, t in enumerate(conv_targets)}
    convs: dict[inter.Slot, dict[str, Any]] = {}
    truncations = 0
    for r in inter_store.read():
        slot = (r["variant"], r["conv_index"])
        truncations += sum(1 for t in r["turns"] + r["rejected"] if t.get("dropped_messages"))
        if r["kept"] and slot in order and slot not in convs:
            convs[slot] = r
    rows += [inter.sft_row(convs[t], storage_system) for t in sorted(convs, key=order.__getitem__)]
    write_jsonl(out / "introspection.jsonl", rows)
    state["truncations"] = truncations
    stats = {
        "kinds": ledger.stats(),
        "kept_rows": {"reflection": len(plan.kept), "interaction": len(convs)},
        "truncations": truncations,
        "tokens": {"prompt": tokens.prompt, "completion": tokens.completion} if tokens else {},
        "duration_s": round(time.time() - started, 3),
    }
    atomic_write_json(out / STATS, stats)
    return rows
