"""`character runs show RUN`: one run as a document (`--json`) and as tables with a few samples.

Everything is read through `character.runs` (the one reader of run directories, shared with the
report and the Studio), so a half-written or live run reads the same here as there.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from character.commands.output import cell, footer, headline, kv_table, sample_panels

SAMPLE_PROMPTS = 3


def _when(ts: float | None) -> str | None:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else None


def _sample_pairs(sub: Path, n: int = SAMPLE_PROMPTS) -> list[dict[str, Any]]:
    """Base vs trained replies to the first `n` held-out prompts of the eval stage."""
    from character import runs

    by_prompt: dict[str, dict[str, Any]] = {}
    for r in runs.read_metrics(sub / "eval" / "replies.jsonl"):  # the tolerant JSONL reader
        pid = str(r.get("prompt_id", ""))
        if pid not in by_prompt and len(by_prompt) >= n:
            continue
        row = by_prompt.setdefault(pid, {"prompt": r.get("prompt", ""), "base": "", "trained": ""})
        row["trained" if r.get("side") == "after" else "base"] = r.get("reply", "")
    return list(by_prompt.values())


def run_doc(run_dir: Path) -> dict[str, Any]:
    """Everything `runs show` knows about a run, as plain JSON-able data."""
    from character import runs

    s = runs.summary(run_dir)
    doc: dict[str, Any] = {k: v for k, v in dataclasses.asdict(s).items() if k not in ("current", "path")}
    doc["path"] = str(s.path)
    doc["current"] = dataclasses.asdict(s.current) if s.current else None
    doc["subruns"] = {}
    for label, sub in runs.subrun_dirs(run_dir):
        doc["subruns"][label] = {
            "stages": runs.stage_rows(sub),
            "drops": {st: runs.drop_reasons(sub / st) for st in ("distill", "introspect")},
            "marker_rates": runs.marker_rates(sub),
            "cost": [
                {"stage": st, "model": m, "prompt_tokens": p, "completion_tokens": c, "usd": u}
                for st, m, p, c, u in runs.cost_rows(sub)
            ],
            "samples": _sample_pairs(sub),
        }
    return doc


def _stage_table(label: str, rows: list[dict[str, Any]]) -> Table:
    t = Table(title=label, title_justify="left")
    for c in ("stage", "status", "seconds", "counts", "dropped"):
        t.add_column(c, overflow="fold")
    for r in rows:
        counts = ", ".join(f"{k} {cell(v)}" for k, v in list(r["counts"].items())[:5])
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(r["dropped"].items(), key=lambda kv: -kv[1])[:4])
        status = r["status"] + (f": {r['error']}" if r.get("error") else "")
        t.add_row(r["stage"], Text(status), cell(r["duration_s"]), Text(counts), Text(dropped))
    return t


def run_view(doc: dict[str, Any]) -> list[RenderableType]:
    out: list[RenderableType] = [
        headline(f"{doc['name']}: {doc['status']} ({doc['stages_done']}/6 stages of the full run)"),
        kv_table(
            "",
            [
                ("persona", doc["persona"]),
                ("scale", doc["scale"]),
                ("started", _when(doc["started_at"])),
                ("finished", _when(doc["finished_at"])),
                ("tokens", doc["tokens"]),
                ("cost USD", f"{doc['cost_usd']:.4f}"),
                ("path", doc["path"]),
                *([("error", doc["error"])] if doc.get("error") else []),
            ],
        ),
    ]
    cur = doc.get("current")
    if cur:
        total = f"/{cur['total']}" if cur.get("total") else ""
        eta = f", ETA {round(cur['eta_s'])} s" if cur.get("eta_s") else ""
        out.append(Text(f"now: {cur['sub']} {cur['stage']} {cur['done']}{total} {cur['unit']}{eta}"))
    for label, sub in doc["subruns"].items():
        out.append(_stage_table(label, sub["stages"]))
        m = sub.get("marker_rates")
        if m:
            lift = 100 * (m["after"] - m["before"])
            out.append(
                Text(
                    f"{label}: persona-marker rate without a system prompt {m['before']:.3f} (base) -> "
                    f"{m['after']:.3f} (trained), {lift:+.1f} points"
                )
            )
    main = doc["subruns"].get("main") or next(reversed(doc["subruns"].values()), None)
    if main and main["cost"]:
        t = Table(title="tokens and cost", title_justify="left")
        for c in ("stage", "model", "prompt", "completion", "USD"):
            t.add_column(c)
        for r in main["cost"]:
            t.add_row(
                r["stage"],
                Text(r["model"]),
                str(r["prompt_tokens"]),
                str(r["completion_tokens"]),
                f"{r['usd']:.4f}",
            )
        out.append(t)
    if main:
        out += sample_panels("base vs trained replies", main["samples"], keys=("prompt", "base", "trained"))
    return [*out, footer(output_option=False)]
