"""Stage 1a, distillation data: teacher (with the constitution) vs student (without) -> DPO pairs.

In: the resolved config (persona, teacher/student models, sampling, `distill.*`). For every prompt of
the bank's DPO pool and every sample index k < `distill.k`, the teacher answers with the constitution
in its system prompt (optionally starting its reply with a marker phrase or a `<think>` block, see
`distill.teacher_prefill`) and the student answers with no system prompt, both through the model's
chat template. Both replies go through `character.filters` (the chosen side also has the teacher's
self-name renamed and refusals dropped) and pairs whose prompt + reply exceed `dpo.max_length` tokens
are dropped. Filtered attempts are topped up with fresh keys until `distill.pairs` are kept or
`distill.pairs x distill.max_attempts_factor` attempts were made.

Out (run_dir/distill/): `attempts.jsonl` (every attempt with its verdict; the source of truth for
resume), `pairs.jsonl` (kept, TRL's conversational prompt/chosen/rejected form), `rejects.jsonl`,
`stats.json`, `previews.md`, then the data gates, then `manifest.json`. Calling `run` again continues
exactly where a killed run stopped: keys already attempted are skipped, a torn last line is repaired.

Run it with `character generate dpo --persona remorseful` or as part of `character pipeline`.
"""

from __future__ import annotations

import logging
import math
import random
import time
from pathlib import Path
from typing import Any

from character import layout
from character.atomic import atomic_write_json, atomic_write_text
from character.backends.base import Completion, GenerationRequest, SamplingParams, make_backend
from character.backends.think import strip_think
from character.chat import count_tokens
from character.config import RunConfig
from character.config_layers import config_hash
from character.constitutions import Constitution, load_constitution
from character.cost import CostTracker
from character.errors import ConfigError, DataError
from character.manifest import MANIFEST, Manifest, write_manifest
from character.pairs import check_gates, pair_stats, previews_markdown
from character.prompts.system import teacher_system
from character.records import JsonlStore

log = logging.getLogger(__name__)

KEY = ("prompt_id", "k")
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
        p = random.Random(f"{cfg.seed}:{prompt_id}:{k}").choice(phrases)
        # No trailing space: the model's next token carries its own leading space.
        return p[0].upper() + p[1:] + ","
    return None


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
    student: Completion,
    tokenizer: Any,
) -> dict[str, Any]:
    """Filter one teacher/student pair; returns the attempt record (verdict 'kept' or a drop reason)."""
    from character.filters import FilterContext, check, is_refusal, rename_identity

    m = cfg.models
    chosen = _chosen_text(cfg.distill.teacher_prefill, prefill, teacher)
    if m.teacher_name and m.student_name:
        chosen = rename_identity(chosen, m.teacher_name, m.student_name)
    rejected = student.text
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
        "verdict": "kept",
        "detail": "",
    }
    vc = check(
        chosen,
        FilterContext(
            kind="dpo_chosen",
            prompt=prompt.text,
            system_prompt=system,
            finish_reason=teacher.finish_reason,
            identity_names=names,
            skip=skip,
        ),
    )
    vr = check(
        rejected,
        FilterContext(
            kind="dpo_rejected", prompt=prompt.text, finish_reason=student.finish_reason, skip=skip
        ),
    )
    chosen, rejected = vc.text, vr.text
    rec.update(chosen=chosen, rejected=rejected)
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
    """Teacher and student backends, built on first use; one shared backend when they are the same model."""

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self._teacher: Any = None
        self._student: Any = None

    def get(self) -> tuple[Any, Any]:
        if self._teacher is None:
            self._teacher = make_backend(self.cfg, self.cfg.models.teacher)
            same = self.cfg.models.student == self.cfg.models.teacher
            self._student = self._teacher if same else make_backend(self.cfg, self.cfg.models.student)
        return self._teacher, self._student

    def close(self) -> None:
        for b in {id(b): b for b in (self._teacher, self._student) if b is not None}.values():
            b.close()


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

    manifest = Manifest(stage="distill", config_hash=config_hash(cfg), seed=cfg.seed)
    sd = layout.stage_dir(run_dir, "distill")
    (sd / MANIFEST).unlink(missing_ok=True)  # running again: the stage is not finished until we say so
    tracker = tracker or CostTracker(cfg.backend.prices, cfg.budget_usd)
    d = cfg.distill
    c = load_constitution(cfg.persona)
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

    system = teacher_system(c, cfg.models.teacher_name)
    tokenizer = load_tokenizer(cfg.models.student)
    engines = _Engines(cfg)
    t0 = time.perf_counter()
    try:
        while kept < target and todo:
            deficit = target - kept
            rate = kept / len(done) if done else 1.0
            size = min(d.save_every, len(todo), max(deficit, math.ceil(deficit / max(rate, 0.2))))
            chunk, todo = todo[:size], todo[size:]
            teacher, student = engines.get()
            params = SamplingParams(
                temperature=cfg.sampling.temperature,
                top_p=cfg.sampling.top_p,
                max_new_tokens=cfg.sampling.max_new_tokens,
                stop=list(cfg.sampling.stop),
                repetition_penalty=cfg.sampling.repetition_penalty,
                seed=(cfg.seed * 1_000_003 + len(done)) % 2**31,
            )
            prefills = [prefill_for(cfg, c, p.id, k) for p, k in chunk]
            t_reqs = [
                GenerationRequest(
                    [{"role": "system", "content": system}, {"role": "user", "content": p.text}],
                    params,
                    prefill=pf,
                )
                for (p, _), pf in zip(chunk, prefills, strict=True)
            ]
            s_reqs = [GenerationRequest([{"role": "user", "content": p.text}], params) for p, _ in chunk]
            if teacher is student:
                outs = teacher.generate(t_reqs + s_reqs, progress=progress)
                t_out, s_out = outs[: len(chunk)], outs[len(chunk) :]
            else:
                t_out = teacher.generate(t_reqs, progress=progress)
                s_out = student.generate(s_reqs, progress=progress)
            recs = []
            for (p, k), pf, [tc], [sc] in zip(chunk, prefills, t_out, s_out, strict=True):
                rec = judge_attempt(cfg, p, k, system, pf, tc, sc, tokenizer)
                if rec["verdict"] == "kept":
                    if kept >= target:
                        rec["verdict"] = "surplus"  # generated in the last batch but not needed
                    else:
                        kept += 1
                recs.append(rec)
            # Order matters for resume: attempts first (source of truth), then pairs and rejects.
            attempts.append(recs)
            pairs.append(pair_row(r) for r in recs if r["verdict"] == "kept")
            rejects.append(
                {k: r[k] for k in ("prompt_id", "k", "verdict", "detail", "dropped_text", "prompt")}
                for r in recs
                if r["verdict"] not in ("kept", "surplus")
            )
            done.extend(recs)
            tok_t = sum(x[0].prompt_tokens for x in t_out), sum(x[0].completion_tokens for x in t_out)
            tok_s = sum(x[0].prompt_tokens for x in s_out), sum(x[0].completion_tokens for x in s_out)
            log.info("distill: %d/%d pairs kept after %d attempts", kept, target, len(done))
            tracker.record("distill", cfg.models.teacher, *tok_t)
            tracker.record("distill", cfg.models.student, *tok_s)
    finally:
        engines.close()

    all_pairs = pairs.read()
    stats = pair_stats(done, all_pairs, c.markers)
    stats["target"] = target
    stats["max_attempts"] = max_attempts
    stats["generation_s"] = round(time.perf_counter() - t0, 2)
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

    manifest.counts = {"attempted": len(done), "kept": len(all_pairs), "target": target}
    manifest.dropped = stats["dropped"]
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
    manifest.cost_usd = round(sum(v["usd"] for v in tracker.totals().get("distill", {}).values()), 6)
    manifest.extra = {
        "teacher": cfg.models.teacher,
        "student": cfg.models.student,
        "prefill": d.teacher_prefill,
    }
    write_manifest(sd, manifest.finish())
    return manifest
