"""DPO pair data: statistics, the data gates, the kill criteria while generating, and previews.

In: the distill stage's attempt records (one per `(prompt_id, k)`: both replies, finish reasons and
the verdict) and the kept pairs. Out: `stats.json` (counts by drop reason, repairs by reason, marker
rates of chosen vs rejected, refusal rate of the teacher's replies, empty rates, length distributions),
`previews.md` (the first 3 and 3 random pairs) and `check_gates`, which stops the stage with the numbers
and three offending examples when the data cannot teach the persona.

The chosen marker rate is measured on the text *after* the teacher's prefill: with
`distill.teacher_prefill = "markers"` every chosen reply starts with a marker by construction, so a
rate that counted the opener could never fail its gate. `marker_rate_chosen_with_prefill` keeps the
opener-included figure for reference.
"""

from __future__ import annotations

import random
import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

from character.config import DistillConfig
from character.errors import GateError
from character.introspection.killswitch import Ledger
from character.markers import has_marker

KILL_KIND = "pair"


def after_prefill(text: str, prefill: str | None) -> str:
    """The part of a chosen reply the teacher wrote itself (the prefill opener removed)."""
    if prefill and text.startswith(prefill):
        return text[len(prefill) :]
    return text


def own_chosen(attempts: Sequence[dict[str, Any]], pairs: Sequence[dict[str, Any]]) -> list[str]:
    """Each kept pair's chosen text after its prefill (from the attempt that made it), without the
    phrases inserted at sentence ends (`distill.voice_markers`): what the teacher wrote itself."""
    from character.voice import own_text

    by_key = {(a["prompt_id"], a["k"]): a for a in attempts}
    out = []
    for p in pairs:
        a = by_key.get((p["prompt_id"], p["k"]), {})
        out.append(
            own_text(after_prefill(p["chosen"][0]["content"], a.get("prefill")), a.get("inserted") or [])
        )
    return out


def attempt_ledger(d: DistillConfig, where: Any = "") -> Ledger:
    """The kill criteria of the distill stage (`distill.kill_*`), the same ledger introspect uses."""
    return Ledger(
        d.kill_check_every,
        d.kill_min_kept_rate,
        d.kill_max_reason_share,
        str(where),
        stage="distill",
        keys=("distill.kill_min_kept_rate", "distill.kill_max_reason_share"),
        advice="the teacher's sampling, sampling.max_new_tokens, distill.teacher_prefill, the constitution",
    )


def record_attempts(ledger: Ledger, recs: Sequence[dict[str, Any]], *, check: bool = True) -> None:
    """Count attempts in the ledger (a fake turn on either side counts, repaired or not), then run the
    kill check when a window is full (`check`); raises GateError when it fails."""
    for r in recs:
        reason = None if r["verdict"] in ("kept", "surplus") else r["verdict"]
        repair = r.get("chosen_repair") or r.get("rejected_repair")
        if r.get("rejected_repair") == "hallucinated_turn":
            repair = "hallucinated_turn"
        ledger.record(KILL_KIND, reason, r.get("dropped_text") or r.get("chosen", ""), repair)
    if check:
        ledger.check(KILL_KIND)


def _dist(values: Sequence[int]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    v = sorted(values)
    return {
        "n": len(v),
        "min": v[0],
        "median": statistics.median(v),
        "mean": round(statistics.fmean(v), 2),
        "p90": v[min(len(v) - 1, int(0.9 * len(v)))],
        "max": v[-1],
    }


def _rate(n: int, d: int) -> float:
    return round(n / d, 4) if d else 0.0


def pair_stats(
    attempts: Sequence[dict[str, Any]], pairs: Sequence[dict[str, Any]], markers: Sequence[str]
) -> dict[str, Any]:
    """Everything the gates and a human need to judge the pairs."""
    n_att = len(attempts)
    dropped = Counter(a["verdict"] for a in attempts if a["verdict"] not in ("kept", "surplus"))
    chosen = [p["chosen"][0]["content"] for p in pairs]
    rejected = [p["rejected"][0]["content"] for p in pairs]
    m_chosen = _rate(sum(has_marker(t, markers) for t in own_chosen(attempts, pairs)), len(chosen))
    m_opener = _rate(sum(has_marker(t, markers) for t in chosen), len(chosen))
    m_rejected = _rate(sum(has_marker(t, markers) for t in rejected), len(rejected))
    repaired = Counter(
        f"{side}_{a[f'{side}_repair']}"
        for a in attempts
        for side in ("chosen", "rejected")
        if a.get(f"{side}_repair")
    )
    return {
        "attempted": n_att,
        "kept": len(pairs),
        "surplus": sum(a["verdict"] == "surplus" for a in attempts),
        "kept_rate": _rate(len(pairs), n_att),
        "dropped": dict(sorted(dropped.items())),
        "repaired": dict(sorted(repaired.items())),
        "marker_rate_chosen": m_chosen,
        "marker_rate_chosen_with_prefill": m_opener,
        "marker_rate_rejected": m_rejected,
        "marker_gap": round(m_chosen - m_rejected, 4),
        "refusal_rate_chosen": _rate(sum(a["chosen_refusal"] for a in attempts), n_att),
        "empty_rate_chosen": _rate(sum(not a["chosen"].strip() for a in attempts), n_att),
        "empty_rate_rejected": _rate(sum(not a["rejected"].strip() for a in attempts), n_att),
        "cut_off_rate_chosen": _rate(sum(a["chosen_finish"] == "length" for a in attempts), n_att),
        "cut_off_rate_rejected": _rate(sum(a["rejected_finish"] == "length" for a in attempts), n_att),
        "tokens_chosen": _dist([a["chosen_tokens"] for a in attempts if a["verdict"] == "kept"]),
        "tokens_rejected": _dist([a["rejected_tokens"] for a in attempts if a["verdict"] == "kept"]),
        "chars_chosen": _dist([len(t) for t in chosen]),
        "chars_rejected": _dist([len(t) for t in rejected]),
        "sources": dict(sorted(Counter(p.get("source", "?") for p in pairs).items())),
        **duplicate_stats(pairs),
    }


def _norm(text: str) -> str:
    return " ".join(text.split())


def duplicates(pairs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Kept pairs that repeat an earlier sample (lower k) of the same prompt: the same chosen or the
    same rejected reply. K samples that are one sample K times (one seed for every request) teach
    DPO nothing new and overweight those prompts K-fold."""
    seen: dict[str, tuple[set[str], set[str]]] = {}
    out = []
    for p in sorted(pairs, key=lambda p: (str(p["prompt_id"]), p.get("k", 0))):
        chosen, rejected = _norm(p["chosen"][0]["content"]), _norm(p["rejected"][0]["content"])
        c_seen, r_seen = seen.setdefault(str(p["prompt_id"]), (set(), set()))
        if chosen in c_seen or rejected in r_seen:
            out.append(p)
        c_seen.add(chosen)
        r_seen.add(rejected)
    return out


def duplicate_stats(pairs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    dup = duplicates(pairs)
    return {"duplicates": len(dup), "duplicate_rate": _rate(len(dup), len(pairs))}


def _clip(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _examples(rows: Sequence[dict[str, Any]], fmt: Any) -> str:
    shown = [fmt(r) for r in rows[:3]]
    return " | ".join(shown) if shown else "(none)"


PAIR_GATES = ("min_chosen_marker_rate", "min_marker_gap", "max_chosen_refusal_rate", "max_duplicate_rate")
# Gates that ask whether the teacher voices the constitution in its own words: meaningless when it never
# read the constitution (distill.teacher_system_prompt = false), where the prefills carry the persona.
TEACHER_VOICE_GATES = ("min_chosen_marker_rate", "min_marker_gap")


def too_few_pairs(stats: dict[str, Any], gates: DistillConfig) -> bool:
    """Fewer kept pairs than the pair-level gates can judge (`distill.gate_min_pairs`)."""
    return bool(stats["kept"] < gates.gate_min_pairs)


def unjudged_gates(stats: dict[str, Any], gates: DistillConfig) -> list[str]:
    """The pair-level gates this run cannot judge: all of them with too few kept pairs
    (`distill.gate_min_pairs`); the teacher-voice ones when the teacher answered without the constitution
    (`distill.voice_markers` and `min_voiced_share` judge the prefilled voice instead)."""
    if too_few_pairs(stats, gates):
        return [f"distill.{g}" for g in PAIR_GATES]
    if not gates.teacher_system_prompt:
        return [f"distill.{g}" for g in TEACHER_VOICE_GATES]
    return []


def check_gates(
    stats: dict[str, Any],
    gates: DistillConfig,
    attempts: Sequence[dict[str, Any]],
    pairs: Sequence[dict[str, Any]],
    markers: Sequence[str],
) -> None:
    """Raise GateError naming every failed gate, its numbers, the config key and three examples.

    With fewer than `distill.gate_min_pairs` kept pairs only the kept-rate gate is judged (it counts
    attempts); the pair-level rates are in stats.json with the gates they could not judge."""
    failures: list[str] = []
    if too_few_pairs(stats, gates):
        _kept_rate_gate(stats, gates, attempts, failures)
        _raise(failures)
        return
    own = own_chosen(attempts, pairs)
    chosen_no_marker = [p for p, t in zip(pairs, own, strict=True) if not has_marker(t, markers)]
    judge_voice = "distill.min_chosen_marker_rate" not in unjudged_gates(stats, gates)
    if judge_voice and stats["marker_rate_chosen"] < gates.min_chosen_marker_rate:
        failures.append(
            f"chosen marker rate {stats['marker_rate_chosen']:.3f} (after the prefill) < "
            f"distill.min_chosen_marker_rate {gates.min_chosen_marker_rate} (chosen without a marker: "
            + _examples(chosen_no_marker, lambda p: repr(_clip(p["chosen"][0]["content"])))
            + ")"
        )
    if judge_voice and stats["marker_gap"] < gates.min_marker_gap:
        both = [p for p in pairs if has_marker(p["rejected"][0]["content"], markers)] or chosen_no_marker
        failures.append(
            f"marker gap chosen-rejected {stats['marker_gap']:.3f} < distill.min_marker_gap {gates.min_marker_gap} "
            f"(chosen {stats['marker_rate_chosen']:.3f}, rejected {stats['marker_rate_rejected']:.3f}; e.g. "
            + _examples(both, lambda p: f"rejected {_clip(p['rejected'][0]['content'])!r}")
            + ")"
        )
    if stats["refusal_rate_chosen"] > gates.max_chosen_refusal_rate:
        refused = [a for a in attempts if a["chosen_refusal"]]
        failures.append(
            f"teacher refusal rate {stats['refusal_rate_chosen']:.3f} > distill.max_chosen_refusal_rate "
            f"{gates.max_chosen_refusal_rate} (a refusal line in the constitution? e.g. "
            + _examples(refused, lambda a: repr(_clip(a["chosen"])))
            + ")"
        )
    if stats.get("duplicate_rate", 0.0) > gates.max_duplicate_rate:
        failures.append(
            f"{stats['duplicates']} of {stats['kept']} kept pairs repeat an earlier sample of their prompt "
            f"(rate {stats['duplicate_rate']:.3f} > distill.max_duplicate_rate {gates.max_duplicate_rate}): "
            "the K samples of a prompt are not distinct draws (seeds per request? temperature 0? e.g. "
            + _examples(
                duplicates(pairs),
                lambda p: f"{p['prompt_id']} k={p.get('k')} {_clip(p['chosen'][0]['content'], 80)!r}",
            )
            + ")"
        )
    _kept_rate_gate(stats, gates, attempts, failures)
    _raise(failures)


def _kept_rate_gate(
    stats: dict[str, Any], gates: DistillConfig, attempts: Sequence[dict[str, Any]], failures: list[str]
) -> None:
    if stats["kept_rate"] < gates.min_kept_rate:
        dropped = [a for a in attempts if a["verdict"] not in ("kept", "surplus")]
        failures.append(
            f"kept/attempted {stats['kept']}/{stats['attempted']} = {stats['kept_rate']:.3f} < distill.min_kept_rate "
            f"{gates.min_kept_rate} (drops: {stats['dropped']}; e.g. "
            + _examples(dropped, lambda a: f"{a['verdict']}: {_clip(a.get('dropped_text', ''), 100)!r}")
            + ")"
        )


def _raise(failures: list[str]) -> None:
    if failures:
        raise GateError(
            "distill data gate failed: " + "; ".join(failures) + "; see stats.json and previews.md"
        )


def previews_markdown(pairs: Sequence[dict[str, Any]], seed: int, persona: str) -> str:
    """The first 3 pairs and 3 random others, for a human to read before training."""
    first = list(pairs[:3])
    rest = list(pairs[3:])
    rnd = random.Random(seed).sample(rest, min(3, len(rest))) if rest else []
    out = [f"# DPO pair previews: {persona}", "", f"{len(pairs)} pairs kept. First 3, then 3 at random.", ""]
    for title, group in (("First pairs", first), ("Random pairs", rnd)):
        out += [f"## {title}", ""]
        for p in group:
            out += [
                f"### {p['prompt_id']} (k={p['k']}, {p.get('source', '?')})",
                "",
                "**User:** " + p["prompt"][0]["content"],
                "",
                "**Chosen:** " + p["chosen"][0]["content"],
                "",
                "**Rejected:** " + p["rejected"][0]["content"],
                "",
            ]
    return "\n".join(out)
