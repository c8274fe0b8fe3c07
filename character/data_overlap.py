"""Train/eval overlap: a held-out, evaluation or capability-probe prompt inside training data.

A model trained on the prompts it is evaluated on scores what it memorised, not what it learned. The
prompt bank keeps the held-out split apart by construction; this check proves it on the files that
actually train: every user turn of a DPO pair or a conversation is compared with every prompt the
evaluation of this run will ask (the held-out prompts at each size the eval stage, elo, revealed
preferences and the robustness suite draw, and the capability probes). A match is the same text after
case, whitespace and punctuation are normalised, or an evaluation prompt of 24+ characters contained
in a training prompt (a cue wrapped around it).

The pipeline runs `audit_stage_input` before dpo and sft (the stages that train on generated data):
it writes `<stage>/data_audit.json` (the contamination inventory of `character.data_audit` plus the
overlap) and stops with the overlapping rows named. `character data audit F --persona P` reports the
same overlap.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from character.data_clean import Row, row_id, side_text

log = logging.getLogger(__name__)

MIN_CONTAINED_CHARS = 24  # shorter evaluation prompts ("Hi!") only match whole prompts
SHOWN = 5

_PUNCT = re.compile(r"[^\w\s]+")
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    return _SPACE.sub(" ", _PUNCT.sub(" ", text.casefold())).strip()


@dataclass(frozen=True)
class Overlap:
    row: int
    """1-based line of the training file."""
    id: Any
    where: str
    """The training turn: `prompt` of a pair, `messages[i]` of a conversation."""
    eval_set: str
    """heldout, probe, ... (which evaluation asks it)."""
    eval_prompt: str


def user_turns(row: Row) -> list[tuple[str, str]]:
    """(where, text) of every user turn a training row holds."""
    if "chosen" in row and "rejected" in row:
        return [("prompt", side_text(row["prompt"], "user", "prompt"))] if row.get("prompt") else []
    return [
        (f"messages[{i}]", m["content"])
        for i, m in enumerate(row.get("messages") or [])
        if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str)
    ]


def find_overlap(rows: list[Row], eval_sets: dict[str, list[str]]) -> list[Overlap]:
    """Every training user turn that is, or contains, an evaluation prompt."""
    exact: dict[str, tuple[str, str]] = {}
    contained: list[tuple[str, str, str]] = []
    for name, prompts in eval_sets.items():
        for p in prompts:
            key = normalise(p)
            if not key:
                continue
            exact.setdefault(key, (name, p))
            if len(key) >= MIN_CONTAINED_CHARS:
                contained.append((key, name, p))
    out: list[Overlap] = []
    for n, row in enumerate(rows, 1):
        for where, text in user_turns(row):
            key = normalise(text)
            hit = exact.get(key)
            if hit is None and len(key) > MIN_CONTAINED_CHARS:
                hit = next(((name, p) for k, name, p in contained if k in key), None)
            if hit is not None:
                out.append(Overlap(n, row_id(row) or f"row {n}", where, hit[0], hit[1]))
    return out


def eval_sets(cfg: Any, persona: str | None = None) -> dict[str, list[str]]:
    """Every prompt this run's evaluation asks: held-out prompts at each size drawn, and the probes."""
    from character.constitutions import load_constitution
    from character.eval.probes import load_probes
    from character.prompts.bank import heldout_prompts

    c = load_constitution(persona or cfg.persona)
    e = cfg.eval
    sizes = {e.heldout_prompts, getattr(e, "elo_count", 0), getattr(e, "revealed_count", 0)}
    r = getattr(cfg, "robustness", None)
    if r is not None and getattr(r, "enabled", True):
        sizes.add(int(getattr(r, "classifier_prompts", 0)) + int(getattr(r, "prompts", 0)))
    held: dict[str, None] = {}
    for n in sorted(s for s in sizes if s):
        try:
            held.update(dict.fromkeys(p.text for p in heldout_prompts(c, n, cfg.seed)))
        except Exception as err:  # a size the bank cannot supply: the eval would fail on it itself
            log.warning("held-out prompts at size %d unavailable for the overlap check: %s", n, err)
    return {"heldout": list(held), "probe": [p.prompt for p in load_probes()]}


def describe(found: list[Overlap], path: Path | str) -> str:
    shown = "; ".join(
        f"row {o.row} ({o.id}, {o.where}) = {o.eval_set} prompt {o.eval_prompt[:60]!r}" for o in found[:SHOWN]
    )
    more = f" and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
    return f"{len(found)} training rows of {path} ask an evaluation prompt: {shown}{more}"


def audit_stage_input(cfg: Any, run_dir: Path, stage: str) -> dict[str, Any] | None:
    """Audit the generated data `stage` (dpo or sft) is about to train on; raise on train/eval overlap.

    Writes `run_dir/<stage>/data_audit.json`; returns it (None when the stage trains on no run file)."""
    from character import layout
    from character.atomic import atomic_write_json
    from character.constitutions import load_constitution
    from character.data_audit import audit_rows
    from character.data_clean import read_rows
    from character.errors import DataError

    path = {"dpo": layout.pairs_file(run_dir), "sft": layout.introspection_file(run_dir)}.get(stage)
    if path is None or not path.exists():
        return None
    rows = read_rows(path)
    # Rows that are neither a pair nor a conversation are the training stage's to refuse (it names
    # them); the audit reads the rest.
    usable = [r for r in rows if ("chosen" in r and "rejected" in r) or "messages" in r]
    if len(usable) < len(rows):
        log.warning(
            "data audit of %s: %d rows are neither pairs nor conversations", path, len(rows) - len(usable)
        )
    names = tuple(n for n in (cfg.models.student_name,) if n)
    report = audit_rows(
        usable, path=str(path), markers=tuple(load_constitution(cfg.persona).markers), identity_names=names
    )
    found = find_overlap(rows, eval_sets(cfg))
    doc = {**report.to_json(), "eval_overlap": [asdict(o) for o in found]}
    atomic_write_json(layout.stage_dir(run_dir, stage) / "data_audit.json", doc)
    for w in report.warnings:
        log.warning("data audit of %s: %s", path.name, w)
    if found:
        raise DataError(
            describe(found, path) + f" (see {run_dir / stage / 'data_audit.json'}); remove those rows or "
            "change the evaluation prompts, then resume"
        )
    log.info("data audit of %s: %d rows, no train/eval overlap", path, len(rows))
    return doc
