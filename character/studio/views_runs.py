"""Runs list and run page: status and live progress, stage timeline, training curves, drops, markers,
robustness and compare results, cost, and the resolved config with each value's source.

Everything is read through `character.runs`. Each section of the run page is built on its own: a
section whose files are malformed or half-written shows an error panel while the rest still renders.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from character import runs
from character.studio import security
from character.studio.app import render, settings
from character.studio.views_data import REASON_FIELDS

log = logging.getLogger(__name__)

# (plot title, [(metrics key, trace name, dashed)]): the curves the run page draws per training stage.
CURVES: list[tuple[str, str, list[tuple[str, str, bool]]]] = [
    ("loss", "loss", [("loss", "train", False), ("eval_loss", "held-out", True)]),
    (
        "accuracy",
        "reward accuracy",
        [("rewards/accuracies", "train", False), ("eval_rewards/accuracies", "held-out", True)],
    ),
    (
        "margin",
        "reward margin",
        [("rewards/margins", "train", False), ("eval_rewards/margins", "held-out", True)],
    ),
    ("entropy", "entropy", [("entropy", "train", False), ("eval_entropy", "held-out", True)]),
]
LIVE = ("running",)


class Section:
    """A piece of a page built by `fn`; if reading its files fails, `error` holds why (shown as a panel)."""

    def __init__(self, name: str, fn: Callable[[], Any]):
        self.name = name
        self.error: str | None = None
        self.value: Any = None
        try:
            self.value = fn()
        except Exception as e:  # a half-written or malformed file must never take the page down
            log.warning("studio: section %s: %s", name, e)
            self.error = f"{type(e).__name__}: {' '.join(str(e).split())[:400]}"


def _summaries(request: Request) -> list[Section]:
    now = time.time()
    return [Section(d.name, partial(runs.summary, d, now)) for d in runs.list_runs(settings(request).runs)]


async def runs_page(request: Request) -> Response:
    items = _summaries(request)
    live = any(s.value is not None and s.value.status in LIVE for s in items)
    return render(request, "runs.html", items=items, live=live, root=settings(request).runs)


async def runs_fragment(request: Request) -> Response:
    items = _summaries(request)
    live = any(s.value is not None and s.value.status in LIVE for s in items)
    resp = render(request, "runs_rows.html", items=items)
    resp.headers["X-Studio-Live"] = "1" if live else "0"
    return resp


async def runs_api(request: Request) -> Response:
    out = []
    for s in _summaries(request):
        if s.value is None:
            out.append({"name": s.name, "error": s.error})
            continue
        v = s.value
        doc = {k: getattr(v, k) for k in ("name", "persona", "scale", "status", "error", "stages_done")}
        doc.update(tokens=v.tokens, cost_usd=v.cost_usd, subruns=v.subruns)
        doc["current"] = vars(v.current) if v.current else None
        out.append(doc)
    return JSONResponse(out)


# ---- one run --------------------------------------------------------------------------------------


def _timeline(sub: Path) -> dict[str, Any]:
    rows = runs.stage_rows(sub)
    now = time.time()
    for r in rows:
        if r["status"] == "running" and isinstance(r["started_at"], int | float):
            r["elapsed_s"] = now - r["started_at"]
    total = sum(float(r.get("duration_s") or r.get("elapsed_s") or 0.0) for r in rows) or 1.0
    for r in rows:
        r["share"] = 100.0 * float(r.get("duration_s") or r.get("elapsed_s") or 0.0) / total
    cur = runs.current_stage(sub.parent if sub.name in runs.SUBRUNS else sub)
    progress = None
    if cur is not None and cur[0] == sub and any(r["status"] == "running" for r in rows):
        progress = runs.stage_progress(cur[0], cur[1], cur[2])
    return {"rows": rows, "progress": progress}


def _plots(sub: Path, label: str) -> list[dict[str, Any]]:
    """Plot specs (drawn by plotly in the page) for each training stage's metrics.jsonl."""
    out = []
    for stage in ("dpo", "sft"):
        rows = runs.read_metrics(sub / stage / "metrics.jsonl")
        if not rows:
            continue
        for key, title, series in CURVES:
            traces = []
            for metric, name, dashed in series:
                xs, ys = runs.curve(rows, metric)
                if xs:
                    traces.append({"x": xs, "y": ys, "name": name, "dash": dashed})
            if traces:
                out.append(
                    {
                        "id": f"plot-{label}-{stage}-{key}",
                        "title": f"{stage.upper()} {title}",
                        "traces": traces,
                    }
                )
    return out


def _torn(sub: Path) -> list[str]:
    """Notes on metrics files whose last line is torn (a live run, or one killed mid-write)."""
    notes = []
    for stage in ("dpo", "sft"):
        p = sub / stage / "metrics.jsonl"
        if p.exists():
            data = p.read_bytes()
            if data and not data.endswith(b"\n"):
                torn = len(data) - data.rfind(b"\n") - 1
                notes.append(f"{stage}/metrics.jsonl ends in a partial line ({torn} bytes): not plotted")
    return notes


# Per generation stage: its rejects file in the data browser, and the field holding the dropped text.
REJECTS = {"distill": ("distill-rejects", "dropped_text"), "introspect": ("introspect-rejects", "text")}


def _drops(request: Request, sub: Path) -> list[dict[str, Any]]:
    """Drop counts per stage and reason, with up to three rejected texts per reason as examples."""
    out = []
    for stage in ("distill", "introspect"):
        counts = runs.drop_reasons(sub / stage)
        if not counts:
            continue
        kind, text_key = REJECTS[stage]
        rejects = security.data_file(sub, kind)
        examples: dict[str, list[str]] = {}
        if rejects.exists():
            idx = settings(request).index.get(rejects)
            for reason, rows in idx.facet(*REASON_FIELDS[kind]).items():
                examples[reason] = [
                    str(r.data.get(text_key, ""))[:600]
                    for r in idx.rows(rows[:3])
                    if isinstance(r.data, dict)
                ]
        out.append(
            {
                "stage": stage,
                "kind": kind,
                "reasons": sorted(counts.items(), key=lambda kv: -kv[1]),
                "examples": examples,
            }
        )
    return out


def _markers(sub: Path) -> dict[str, Any] | None:
    rates = runs.marker_rates(sub)
    if rates is None:
        return None
    doc = runs.read_json(sub / "eval" / "markers.json")
    doc = doc if isinstance(doc, dict) else {}
    return {"rates": rates, "before": doc.get("before"), "after": doc.get("after"), "doc": doc}


def _evidence(sub: Path) -> list[dict[str, Any]]:
    """Robustness and compare results the eval tools wrote next to the run's eval output."""
    out: list[dict[str, Any]] = []
    ev = sub / "eval"
    if not ev.is_dir():
        return out
    names = sorted(p.name for p in ev.glob("*.json") if p.name.startswith(("robustness", "compare")))
    for name in names:
        p = ev / name
        doc = runs.read_json(p)
        if doc is None:
            out.append({"name": name, "error": f"{name} is not readable JSON (half-written or damaged)"})
            continue
        item: dict[str, Any] = {
            "name": name,
            "summary": _flat_summary(doc),
            "raw": json.dumps(doc, indent=2)[:20000],
        }
        if name == "robustness.json" and isinstance(doc, dict):
            try:
                item["blocks"] = _robustness_blocks(doc)
            except Exception as e:  # an older or odd document: its fields and raw JSON still show
                log.warning("studio: robustness.json of %s: %s", sub, e)
        out.append(item)
    return out


def _robustness_blocks(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The robustness document as its own module describes it (the CLI's and the report's table)."""
    from character.eval.robustness.report import describe, table

    blocks: list[dict[str, Any]] = []
    for line in [*describe(doc), "", *table(doc)]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if all(set(c) <= set("-: ") for c in cells):
                continue
            if not blocks or blocks[-1]["kind"] != "table":
                blocks.append({"kind": "table", "rows": []})
            blocks[-1]["rows"].append([c.replace("**", "") for c in cells])
        elif line.strip():
            blocks.append({"kind": "text", "text": line.lstrip("- ").replace("**", "").replace("`", "")})
    return blocks


def _flat_summary(doc: Any, prefix: str = "", depth: int = 0) -> list[tuple[str, str]]:
    """Scalar fields of a result document (three levels deep) for a quick table; the raw JSON is beside it."""
    rows: list[tuple[str, str]] = []
    if not isinstance(doc, dict) or depth > 2:
        return rows
    for k, v in doc.items():
        if isinstance(v, bool | int | float | str) or v is None:
            rows.append((prefix + str(k), v if isinstance(v, str) else json.dumps(v)))
        elif isinstance(v, list) and all(isinstance(x, str) for x in v) and len(v) <= 12:
            rows.append((prefix + str(k), "; ".join(v)))
        elif isinstance(v, dict):
            rows += _flat_summary(v, f"{prefix}{k}.", depth + 1)
    return rows[:80]


def _subrun(request: Request, label: str, sub: Path) -> dict[str, Any]:
    return {
        "label": label,
        "timeline": Section("timeline", lambda: _timeline(sub)),
        "plots": Section("curves", lambda: _plots(sub, label)),
        "torn": Section("metrics files", lambda: _torn(sub)),
        "drops": Section("drops", lambda: _drops(request, sub)),
        "markers": Section("markers", lambda: _markers(sub)),
        "evidence": Section("robustness and compare", lambda: _evidence(sub)),
        "cost": Section("cost", lambda: runs.cost_rows(sub)),
        "has_replies": (sub / "eval" / "replies.jsonl").exists(),
        "files": [k for k in security.DATA_FILES if security.data_file(sub, k).exists()],
    }


async def run_page(request: Request) -> Response:
    run = security.run_dir(settings(request).runs, request.path_params["run"])
    summary = Section("summary", lambda: runs.summary(run))
    subs = [_subrun(request, label, sub) for label, sub in runs.subrun_dirs(run)]
    config = Section("config", lambda: runs.config_rows(run))
    plots = [p for s in subs if s["plots"].value for p in s["plots"].value]
    live = summary.value is not None and summary.value.status in LIVE
    return render(
        request,
        "run.html",
        run=run,
        summary=summary,
        subs=subs,
        config=config,
        plots=plots,
        live=live,
        has_manifest=any(runs.stages_done(sub) for _, sub in runs.subrun_dirs(run)),
    )


async def run_status_fragment(request: Request) -> Response:
    run = security.run_dir(settings(request).runs, request.path_params["run"])
    summary = Section("summary", lambda: runs.summary(run))
    subs = [
        {"label": label, "timeline": Section("timeline", partial(_timeline, sub))}
        for label, sub in runs.subrun_dirs(run)
    ]
    resp = render(request, "run_status.html", run=run, summary=summary, subs=subs)
    live = summary.value is not None and summary.value.status in LIVE
    resp.headers["X-Studio-Live"] = "1" if live else "0"
    return resp


routes = [
    Route("/", runs_page),
    Route("/fragments/runs", runs_fragment),
    Route("/api/runs", runs_api),
    Route("/runs/{run}", run_page),
    Route("/fragments/runs/{run}/status", run_status_fragment),
]
