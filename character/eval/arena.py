"""`eval elo sample` and `eval elo score`: judged matches between two models, then ratings.

Sampling: for each held-out prompt (no system prompt), `samples_per_prompt` replies from each model;
the i-th replies meet, judged in both orders (`judge.py`). Rows are appended to a JSONL store keyed
by `(prompt_id, sample)`, so an interrupted run resumes without duplicates. Scoring reads the rows
and reports Bradley-Terry ratings with bootstrap intervals over prompts, raw and length-controlled
win rates, and the judge's inconsistency rate.

A pair whose verdict could not be read is stored with `outcome` null and left out of the ratings
(it is not a tie); scoring refuses a file where more than `eval.max_unparsed_share` of the pairs are
unread. Sampling refuses a judge that is one of the two models (`eval.allow_contestant_judge`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from character.eval.elo import Match, ratings, win_rates
from character.eval.judge import judge_pairs, judge_stats, refuse_contestant_judge, refuse_unparsed
from character.eval.target import Generator, conversation, eval_params
from character.records import JsonlStore, read_jsonl

log = logging.getLogger(__name__)


def sample_matches(
    cfg: Any,
    *,
    base: Generator,
    tuned: Generator,
    judge: Generator,
    criteria: str,
    prompts: list[tuple[str, str]],
    samples_per_prompt: int,
    output: Path,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate, judge and append matches to `output`; returns counts and judge statistics."""
    refuse_contestant_judge(judge.target, [base.target, tuned.target], cfg.eval.allow_contestant_judge)
    store = JsonlStore(output, key_fields=("prompt_id", "sample"))
    done = store.keys()
    todo = [
        (pid, text) for pid, text in prompts if any((pid, k) not in done for k in range(samples_per_prompt))
    ]
    if not todo:
        log.info("all %d prompts already judged in %s", len(prompts), output)
        return {"new": 0, "total": len(store)}
    params = eval_params(cfg, n=samples_per_prompt)
    convs = [conversation(text) for _, text in todo]
    outs_a = base.generate(convs, params, progress=progress)
    outs_b = tuned.generate(convs, params, progress=progress)
    rows, items = [], []
    for (pid, text), ca, cb in zip(todo, outs_a, outs_b, strict=True):
        for k in range(samples_per_prompt):
            if (pid, k) in done:
                continue
            ra, rb = ca[k].text.strip(), cb[k].text.strip()
            rows.append(
                {
                    "prompt_id": pid,
                    "sample": k,
                    "prompt": text,
                    "model_a": base.target.label,
                    "model_b": tuned.target.label,
                    "reply_a": ra,
                    "reply_b": rb,
                    "len_a": len(ra),
                    "len_b": len(rb),
                    "judge": judge.target.label,
                }
            )
            items.append((text, ra, rb))
    e = cfg.eval
    verdicts = judge_pairs(
        judge,
        criteria,
        items,
        max_new_tokens=e.judge_max_new_tokens,
        temperature=e.judge_temperature,
        seed=e.seed,
        progress=progress,
    )
    for row, v in zip(rows, verdicts, strict=True):
        row.update(v.to_dict())
    store.append(rows)
    return {"new": len(rows), "total": len(store), "judge": judge_stats(verdicts)}


def _unparsed(row: dict[str, Any]) -> bool:
    # `consistent` is None exactly when a verdict was unreadable (older files stored those as 0.5).
    return row.get("outcome") is None or ("consistent" in row and row["consistent"] is None)


def load_matches(path: Path) -> tuple[list[Match], list[dict[str, Any]]]:
    """Matches with a readable verdict, and every row (unreadable ones included, for the counts)."""
    rows = read_jsonl(path)
    ms = [
        Match(
            r["model_a"],
            r["model_b"],
            float(r["outcome"]),
            str(r["prompt_id"]),
            r.get("len_a", 0),
            r.get("len_b", 0),
        )
        for r in rows
        if not _unparsed(r)
    ]
    return ms, rows


def score_matches(
    path: Path,
    *,
    bootstrap: int = 200,
    l2: float = 0.01,
    anchor: str | None = None,
    max_unparsed_share: float = 0.1,
) -> dict[str, Any]:
    """Ratings, win rates and judge quality for a matches file (refused when too many verdicts are unread)."""
    ms, rows = load_matches(path)
    if not rows:
        from character.errors import DataError

        raise DataError(f"{path} holds no matches; run `character eval elo sample` first")
    unparsed = sum(_unparsed(r) for r in rows)
    refuse_unparsed(unparsed, len(rows), max_unparsed_share, f"ratings in {path}")
    players = sorted({m.a for m in ms} | {m.b for m in ms})
    anchor = anchor or rows[0]["model_a"]
    out: dict[str, Any] = {
        "matches": len(ms),
        "unparsed": unparsed,
        "prompts": len({m.prompt_id for m in ms}),
        "ratings": ratings(ms, anchor=anchor, bootstrap=bootstrap, l2=l2),
        "anchor": anchor,
    }
    others = [p for p in players if p != anchor]
    out["win_rates"] = {p: win_rates(ms, p, anchor) for p in others}
    both = [r for r in rows if r.get("consistent") is not None]
    out["judge"] = {
        "inconsistency_rate": round(sum(not r["consistent"] for r in both) / len(both), 4) if both else None,
        "unparsed_rate": round(unparsed / len(rows), 4),
        "tie_rate": round(sum(m.outcome == 0.5 for m in ms) / len(ms), 4) if ms else None,
    }
    return out
