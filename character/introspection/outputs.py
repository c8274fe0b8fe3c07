"""The derived files of the introspection stage, rebuilt from the two raw stores.

`reflections.jsonl` and `interactions.jsonl` are the single source of truth. From them this module
replays the filter ledger (so a resumed run's counts and kill window continue where they were) and
rewrites `introspection.jsonl` (kept rows, SFT input, in target order), `rejects.jsonl` (every rejected
reply with its reason and evidence) and `stats.json`, atomically, also when a kill criterion or the
budget stopped the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from character.atomic import atomic_write_json
from character.introspection import interaction as inter
from character.introspection import reflection as refl
from character.introspection.killswitch import Ledger
from character.introspection.plan import SlotPlan
from character.records import write_jsonl

Row = dict[str, Any]


def replay(ledger: Ledger, refl_rows: list[Row], inter_rows: list[Row]) -> None:
    """Feed the stored samples back into the ledger, in the order they were generated."""
    for r in refl_rows:
        ledger.record(refl.KIND, None if r["kept"] else r["reason"], r["text"], r.get("repair"))
    for r in inter_rows:
        # Within a conversation a rejected reply always precedes the kept retry of the same turn.
        events = [(rej["turn"], 0, rej["reason"], rej["text"], rej.get("repair")) for rej in r["rejected"]]
        events += [(n, 1, None, t["text"], t.get("repair")) for n, t in enumerate(r["turns"])]
        for _turn, _order, reason, text, repair in sorted(events, key=lambda e: (e[0], e[1])):
            ledger.record(inter.KIND, reason, text, repair)
    ledger.rearm()


def rejects(refl_rows: list[Row], inter_rows: list[Row]) -> list[Row]:
    out: list[Row] = []
    for r in refl_rows:
        if not r["kept"]:
            out.append(
                {
                    "kind": refl.KIND,
                    "key": f"{r['prompt_index']}-{r['sample_index']}",
                    "attempt": r["attempt"],
                    "turn": None,
                    "reason": r["reason"],
                    "detail": r.get("detail", ""),
                    "text": r["text"],
                }
            )
    for r in inter_rows:
        for rej in r["rejected"]:
            out.append(
                {
                    "kind": inter.KIND,
                    "key": f"{r['variant']}-{r['conv_index']}",
                    "attempt": r["attempt"],
                    "turn": rej["turn"],
                    "reason": rej["reason"],
                    "detail": rej.get("detail", ""),
                    "text": rej["text"],
                }
            )
    return out


def truncations(inter_rows: list[Row]) -> int:
    """Requests whose history was cut to fit the context budget (kept or rejected replies)."""
    return sum(1 for r in inter_rows for t in r["turns"] + r["rejected"] if t.get("dropped_messages"))


def token_totals(refl_rows: list[Row], inter_rows: list[Row]) -> dict[str, int]:
    """Prompt and completion tokens of every stored generation, this session's and earlier ones'."""
    gens = list(refl_rows) + [t for r in inter_rows for t in r["turns"] + r["rejected"]]
    return {
        "prompt": sum(int(g.get("prompt_tokens", 0)) for g in gens),
        "completion": sum(int(g.get("completion_tokens", 0)) for g in gens),
    }


def write(
    out: Path,
    refl_plan: SlotPlan,
    inter_plan: SlotPlan,
    refl_rows: list[Row],
    inter_rows: list[Row],
    storage_system: str,
    ledger: Ledger,
    extra: dict[str, Any],
) -> list[Row]:
    """Rewrite introspection.jsonl, rejects.jsonl and stats.json; returns the kept SFT rows."""
    rows = [refl.sft_row(r) for r in refl_plan.kept_rows()]
    rows += [inter.sft_row(r, storage_system) for r in inter_plan.kept_rows()]
    write_jsonl(out / "introspection.jsonl", rows)
    write_jsonl(out / "rejects.jsonl", rejects(refl_rows, inter_rows))
    stats = {
        "kinds": ledger.stats(),
        "kept_rows": {refl.KIND: refl_plan.done, inter.KIND: inter_plan.done},
        "targets": {refl.KIND: len(refl_plan.targets), inter.KIND: len(inter_plan.targets)},
        "attempts": {refl.KIND: len(refl_rows), inter.KIND: len(inter_rows)},
        "truncations": truncations(inter_rows),
        "tokens": token_totals(refl_rows, inter_rows),
        **extra,
    }
    atomic_write_json(out / "stats.json", stats)
    return rows
