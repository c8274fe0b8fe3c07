"""Before/after comparison and the promotion recommendation.

`compare()` evaluates a baseline and a candidate checkpoint the same way (same held-out prompts, no
system prompt, same sampling seeds), plus a **prompt-only baseline** (the base model with the
constitution as its system prompt: sometimes a prompt beats training, and the user must see that):

- capability probes (`probes.py`, greedy replies, exact scoring), judged by a paired 95 % interval of
  the accuracy difference (`capability.py`): a significant drop fails, too few items is "insufficient
  evidence" and never a pass,
- character strength (`markers.py`: marker rate, markers per 100 words, opener-only vs sustained),
- the quality audit (`audit.py`, with the format probes).

It recommends `promote` or `reject`, with reasons, and **refuses** to decide when the comparison is
suspect, because a comparison of a model with itself looks exactly like a rejected candidate (the seed
report's promotion pipeline did that for four nights, with identical scores and zero errors):

- both sides are the same checkpoint (same real path, or identical weight hashes) - before any work;
- a served endpoint does not report the model it is supposed to serve - before any work;
- the two sides' replies are (nearly) all identical;
- every score of a side is zero, or a side produced no text at all;
- a headline metric is zero on both sides (a scorer that returns 0 for everyone, as the seed's
  `get_score()` did for four nights), or identical on both sides item by item (the same verdict on
  every item, or the same audit components) - unless both sit at the metric's maximum.

`eval compare` stores every verdict as a record (`character.evidence`) named by both sides' weight
hashes: `registry.promote` reads it.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from typing import Any

from character import registry
from character.constitutions import Constitution
from character.errors import CharacterError
from character.eval.audit import audit_replies
from character.eval.capability import DROP, INSUFFICIENT, describe, item_verdicts, paired_difference
from character.eval.markers import character_strength, reply_markers
from character.eval.probes import Probe, probe_params, score_probes
from character.eval.target import Generator, Target, conversation, eval_params, same_checkpoint
from character.prompts.system import teacher_system

log = logging.getLogger(__name__)


class ComparisonRefused(CharacterError):
    """The comparison is suspect (same model twice, wrong model served, all-zero scores)."""


def evaluate_side(
    cfg: Any,
    gen: Generator,
    c: Constitution,
    prompts: list[tuple[str, str]],
    probes: list[Probe],
    *,
    system: str | None = None,
    persona_trained: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Probe accuracy, character strength and the audit for one model (full replies kept)."""
    held = gen.replies([conversation(t, system) for _, t in prompts], eval_params(cfg), progress=progress)
    # Probes are decoded greedily: a sampled wrong answer says nothing about what the model knows.
    probe_replies = gen.replies(
        [conversation(p.prompt, system) for p in probes], probe_params(cfg), progress=progress
    )
    fmt = [
        (p.prompt, r, p.check, p.answer)
        for p, r in zip(probes, probe_replies, strict=True)
        if p.kind == "format"
    ]
    audit = audit_replies(
        [(t, r) for (_, t), r in zip(prompts, held, strict=True)],
        persona_trained=persona_trained,
        markers=c.markers,
        format_items=fmt,
        own_names=(cfg.models.student_name,) if cfg.models.student_name else (),
    )
    per_reply = [reply_markers(r, c.markers, cfg.eval.opener_words) for r in held]
    return {
        "model": gen.target.label,
        "system_prompt": bool(system),
        "probes": score_probes(probes, probe_replies),
        "strength": character_strength(held, c.markers, cfg.eval.opener_words),
        "marker_flags": [r["has_marker"] for r in per_reply],
        "sustained_flags": [r["sustained"] for r in per_reply],
        "audit": audit.to_dict(),
        "replies": [
            {"prompt_id": pid, "prompt": t, "reply": r} for (pid, t), r in zip(prompts, held, strict=True)
        ],
    }


def headline(side: dict[str, Any]) -> dict[str, float]:
    return {
        "probe_accuracy": side["probes"]["accuracy"],
        "marker_rate": side["strength"]["marker_rate"],
        "sustained_rate": side["strength"]["sustained_rate"],
        "audit_score": side["audit"]["score"],
    }


# The headline metrics the decision gates on, with their maxima (sustained_rate only adds a note).
HEADLINE_MAX = {"probe_accuracy": 1.0, "marker_rate": 1.0, "audit_score": 100.0}


def _item_evidence(side: dict[str, Any], metric: str) -> Any:
    """What a headline metric was computed from, item by item (None when the side does not carry it)."""
    if metric == "probe_accuracy":
        return [i.get("ok") for i in side["probes"].get("items", [])] or None
    if metric == "marker_rate":
        return side.get("marker_flags")
    return side["audit"].get("components")


def metric_suspects(baseline: dict[str, Any], candidate: dict[str, Any]) -> list[str]:
    """Headline metrics that cannot tell the two sides apart: zero on both, or identical item by item."""
    out = []
    hb, hc = headline(baseline), headline(candidate)
    for metric in HEADLINE_MAX:
        vb, vc = hb[metric], hc[metric]
        if vb == 0 and vc == 0:
            out.append(
                f"{metric} is 0 on both sides: a scorer that gives every model 0 measures nothing "
                "(the seed report's get_score() returned 0 for four nights); check how it is scored"
            )
        elif vb == vc and vb < HEADLINE_MAX[metric]:
            eb, ec = _item_evidence(baseline, metric), _item_evidence(candidate, metric)
            if eb is None or eb == ec:
                out.append(
                    f"{metric} is identical on both sides ({vb}), item by item: the same scorer output for "
                    "two different models means the same model answered twice or the scorer ignores replies"
                )
    return out


# ---- suspect comparisons --------------------------------------------------------------------------


def endpoint_problem(cfg: Any, model: str, role: str = "student") -> str | None:
    """For an `openai` engine (the role's): does the server say it serves `model`? None when it does."""
    from character.backends.roles import backend_for

    b = backend_for(cfg, role)
    if b.kind != "openai":
        return None
    model = b.model or model
    base = b.base_url.rstrip("/")
    headers = {"Content-Type": "application/json"}
    key = os.environ.get(b.api_key_env)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        req = urllib.request.Request(f"{base}/models", headers=headers)
        with urllib.request.urlopen(req, timeout=b.timeout_s) as resp:
            ids = [m.get("id") for m in json.loads(resp.read()).get("data", [])]
        if model in ids:
            return None
        return f"the server at {base} serves {', '.join(map(str, ids)) or 'no model'}, not '{model}'"
    except (urllib.error.URLError, OSError, ValueError) as e:
        listing_error = str(e)
    # Some servers cannot list models (transformers serve answers 500 offline): ask for one token and
    # read the model name it echoes, and say that this is what was checked.
    body = json.dumps(
        {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    ).encode()
    try:
        req = urllib.request.Request(f"{base}/chat/completions", data=body, headers=headers)
        with urllib.request.urlopen(req, timeout=b.timeout_s) as resp:
            echoed = json.loads(resp.read()).get("model")
    except (urllib.error.URLError, OSError, ValueError) as e:
        return f"cannot confirm what {base} serves: /models failed ({listing_error}) and a completion failed ({e})"
    if echoed == model:
        log.warning("%s cannot list models (%s); a completion echoed '%s'", base, listing_error, echoed)
        return None
    return f"the server at {base} answered as '{echoed}', not '{model}' (and /models failed: {listing_error})"


def refuse_before_work(cfg: Any, baseline: Target, candidate: Target) -> None:
    for t in (baseline, candidate):
        entry = registry.find(registry.exact_ref(t.name)) if t.name else None
        if entry is not None:  # a registry entry must still be the files it was registered as
            registry.verify_pin(registry.Pin.of(entry), "checkpoint")
    why = same_checkpoint(baseline, candidate)
    if why:
        raise ComparisonRefused(f"refusing to compare: {why}; pass two different checkpoints")
    for t in (baseline, candidate):
        problem = endpoint_problem(cfg, t.model)
        if problem:
            raise ComparisonRefused(
                f"refusing to compare: {problem}; restart the server with the right model"
            )


def suspect_reasons(
    baseline: dict[str, Any], candidate: dict[str, Any], max_identical_share: float
) -> list[str]:
    reasons = []
    ra = [r["reply"] for r in baseline["replies"]] + [i["reply"] for i in baseline["probes"]["items"]]
    rb = [r["reply"] for r in candidate["replies"]] + [i["reply"] for i in candidate["probes"]["items"]]
    same = sum(a == b for a, b in zip(ra, rb, strict=True)) / len(ra) if ra else 1.0
    if same >= max_identical_share:
        reasons.append(
            f"{same:.0%} of the replies are identical on both sides (limit {max_identical_share:.0%}): "
            "the same model is probably answering for both"
        )
    for name, side in (("baseline", baseline), ("candidate", candidate)):
        scores = headline(side)
        if all(v == 0 for v in scores.values()):
            reasons.append(f"every score of the {name} is zero ({scores}): the measurement is broken")
        if all(not r["reply"].strip() for r in side["replies"]):
            reasons.append(f"the {name} produced no text at all")
    return reasons + metric_suspects(baseline, candidate)


def capability_of(baseline: dict[str, Any], candidate: dict[str, Any], e: Any) -> dict[str, Any]:
    """Paired probe statistics of candidate vs baseline (`capability.paired_difference`)."""
    return paired_difference(
        item_verdicts(baseline["probes"]),
        item_verdicts(candidate["probes"]),
        min_items=e.min_probe_items,
        bootstrap=e.probe_bootstrap,
        seed=e.seed,
    )


# ---- decision ----------------------------------------------------------------------------------


def decide(
    baseline: dict[str, Any], candidate: dict[str, Any], prompt_only: dict[str, Any] | None, e: Any
) -> tuple[str, list[str]]:
    """('promote' | 'reject', reasons). Every gate is listed, passed or not."""
    b, c = headline(baseline), headline(candidate)
    fails: list[str] = []
    passes: list[str] = []

    def gate(ok: bool, good: str, bad: str) -> None:
        (passes if ok else fails).append(good if ok else bad)

    cap = capability_of(baseline, candidate, e)
    gate(
        cap["verdict"] not in (DROP, INSUFFICIENT),
        f"capability kept: {describe(cap)}",
        ("capability lost: " if cap["verdict"] == DROP else "capability not shown: ") + describe(cap),
    )
    gate(
        c["audit_score"] >= e.min_audit_score,
        f"audit {c['audit_score']:.0f}/100 meets the bar {e.min_audit_score:.0f}",
        f"audit {c['audit_score']:.0f}/100 is below the bar {e.min_audit_score:.0f}",
    )
    gate(
        b["audit_score"] - c["audit_score"] <= e.max_audit_drop,
        f"audit {b['audit_score']:.0f} -> {c['audit_score']:.0f}",
        f"audit fell {b['audit_score']:.0f} -> {c['audit_score']:.0f} (allowed drop {e.max_audit_drop:.0f})",
    )
    gain = c["marker_rate"] - b["marker_rate"]
    gate(
        gain >= e.min_marker_gain,
        f"character strength rose: marker rate {b['marker_rate']:.2f} -> {c['marker_rate']:.2f} without a system prompt",
        f"character strength did not rise enough: marker rate {b['marker_rate']:.2f} -> {c['marker_rate']:.2f} "
        f"(needs +{e.min_marker_gain:.2f})",
    )
    if prompt_only is not None:
        p = headline(prompt_only)
        prompt_wins = (
            p["marker_rate"] >= c["marker_rate"]
            and p["probe_accuracy"] >= c["probe_accuracy"] - e.max_probe_drop
            and p["audit_score"] >= e.min_audit_score
        )
        gate(
            not prompt_wins,
            f"training beats the prompt-only baseline (marker rate {p['marker_rate']:.2f} with the constitution "
            f"as system prompt vs {c['marker_rate']:.2f})",
            f"the prompt-only baseline does as well: marker rate {p['marker_rate']:.2f}, probes "
            f"{p['probe_accuracy']:.2f}, audit {p['audit_score']:.0f} with the constitution as system prompt; "
            "ship the prompt instead",
        )
    s = candidate["strength"]
    if s["marker_rate"] > 0 and s["sustained_rate"] < 0.5 * s["marker_rate"]:
        passes.append(
            f"note: the persona is mostly an opener (opener-only {s['opener_only_rate']:.2f}, "
            f"sustained {s['sustained_rate']:.2f})"
        )
    return ("reject", fails + passes) if fails else ("promote", passes)


def compare(
    cfg: Any,
    baseline: Generator,
    candidate: Generator,
    c: Constitution,
    prompts: list[tuple[str, str]],
    probes: list[Probe],
    *,
    prompt_only: Generator | None = None,
    progress: bool = True,
    precheck: bool = True,
) -> dict[str, Any]:
    """The full comparison report; `recommendation` is promote, reject or refuse.

    `precheck=False` when the caller already ran `refuse_before_work` (before loading any model).
    """
    if precheck:
        refuse_before_work(cfg, baseline.target, candidate.target)
    sides = {
        "baseline": evaluate_side(
            cfg,
            baseline,
            c,
            prompts,
            probes,
            persona_trained=baseline.target.persona is not None,
            progress=progress,
        ),
        "candidate": evaluate_side(cfg, candidate, c, prompts, probes, progress=progress),
    }
    if prompt_only is not None:
        sides["prompt_only"] = evaluate_side(
            cfg,
            prompt_only,
            c,
            prompts,
            probes,
            system=teacher_system(c, cfg.models.student_name),
            progress=progress,
        )
    suspect = suspect_reasons(sides["baseline"], sides["candidate"], cfg.eval.max_identical_share)
    if suspect:
        rec, reasons = "refuse", suspect
    else:
        rec, reasons = decide(sides["baseline"], sides["candidate"], sides.get("prompt_only"), cfg.eval)
    return {
        "recommendation": rec,
        "reasons": reasons,
        "persona": c.name,
        "prompts": len(prompts),
        "probes": len(probes),
        "capability": capability_of(sides["baseline"], sides["candidate"], cfg.eval),
        "summary": {k: headline(v) for k, v in sides.items()},
        "sides": sides,
    }
