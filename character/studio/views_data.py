"""Data browser and side by side: a run's JSONL files, paged and searchable, rendered for reading.

- DPO pairs: prompt and source above chosen | rejected, side by side.
- Introspection: each conversation as a chat. In a self-interaction both sides are the same model;
  the stored transcript is the second copy's view, so its `user` turns were written by the first
  copy. The labels say so, which makes the role swap visible.
- Rejects: filtered by reason (counts per reason as filter links), with the filter's detail.
- Side by side: base vs trained replies to the same held-out prompt from `eval/replies.jsonl`, persona
  markers highlighted with `character.markers` (the matcher the gates and the eval use).

Files are read through `jsonl_index` (byte offsets cached by file size and mtime), so a page of a
20,000-row file parses one page of rows. A torn last line or a malformed row shows a panel.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from character import runs
from character.markers import marker_spans
from character.studio import security
from character.studio.app import render, settings
from character.studio.jsonl_index import JsonlIndex, Row

PER_PAGE = 25
# The fields that make a rejects row's drop reason, as the stage's manifest counts it (introspection
# counts `kind:reason`, e.g. `reflection:phrase_loop`).
REASON_FIELDS = {"distill-rejects": ("verdict",), "introspect-rejects": ("kind", "reason")}


def _int(v: str | None, default: int, lo: int, hi: int) -> int:
    try:
        return max(lo, min(hi, int(v))) if v is not None else default
    except ValueError:
        return default


def _pick_sub(run: Path, wanted: str | None, kind: str) -> tuple[str, Path]:
    """The sub-run asked for, else the first one (full run last) that has the file."""
    if wanted:
        return wanted, security.sub_dir(run, wanted)
    subs = runs.subrun_dirs(run)
    for label, sub in reversed(subs):
        if security.data_file(sub, kind).exists():
            return label, sub
    return subs[-1] if subs else ("main", run)


def _pages(total: int, page: int, per: int) -> dict[str, Any]:
    last = max(1, math.ceil(total / per))
    page = min(page, last)
    window = sorted({1, last, *range(max(1, page - 3), min(last, page + 3) + 1)})
    return {"page": page, "last": last, "window": window, "per": per, "total": total}


def _filtered(idx: JsonlIndex, q: str, reason: str | None, kind: str) -> list[int] | None:
    """Row indices matching the search and the reason filter (None: every row)."""
    hits: list[int] | None = idx.search(q) if q else None
    if reason is not None and kind in REASON_FIELDS:
        by_reason = idx.facet(*REASON_FIELDS[kind]).get(reason, [])
        if hits is None:
            hits = by_reason
        else:
            keep = set(by_reason)
            hits = [i for i in hits if i in keep]
    return hits


async def data_page(request: Request) -> Response:
    studio = settings(request)
    run = security.run_dir(studio.runs, request.path_params["run"])
    qp = request.query_params
    kind = qp.get("file", "pairs")
    if kind not in security.DATA_FILES:
        raise security.Forbidden(kind)
    label, sub = _pick_sub(run, qp.get("sub"), kind)
    path = security.data_file(sub, kind)
    q = qp.get("q", "").strip()[:200]
    reason = qp.get("reason")
    per = _int(qp.get("per"), PER_PAGE, 1, 200)
    page = _int(qp.get("page"), 1, 1, 10**9)
    available = [k for k in security.DATA_FILES if security.data_file(sub, k).exists()]
    ctx: dict[str, Any] = {
        "run": run,
        "sub": label,
        "subs": [lbl for lbl, _ in runs.subrun_dirs(run)],
        "kind": kind,
        "available": available,
        "q": q,
        "reason": reason,
        "rows": [],
        "reasons": [],
        "torn": 0,
        "exists": path.exists(),
        "path": path.relative_to(studio.artifacts) if path.exists() else None,
    }
    if not path.exists():
        ctx["pages"] = _pages(0, 1, per)
        return render(request, "data.html", **ctx)
    idx = studio.index.get(path)
    hits = _filtered(idx, q, reason, kind)
    total = len(idx) if hits is None else len(hits)
    pages = _pages(total, page, per)
    rows = idx.page((pages["page"] - 1) * per, per, hits)
    if kind in REASON_FIELDS:
        ctx["reasons"] = sorted(
            ((r, len(v)) for r, v in idx.facet(*REASON_FIELDS[kind]).items()), key=lambda kv: -kv[1]
        )
    views = [_view(kind, r) for r in rows]
    if kind == "pairs":  # the persona's markers, as the data gates count them
        markers = _markers_of(sub)
        for v in views:
            for side in ("chosen", "rejected"):
                if side in v:
                    v[side] = _marked(v[side], markers)
    ctx.update(rows=views, pages=pages, torn=idx.torn_bytes, file_rows=len(idx))
    return render(request, "data.html", **ctx)


def _view(kind: str, row: Row) -> dict[str, Any]:
    """What the template needs to draw one row of `kind`."""
    v: dict[str, Any] = {"index": row.index, "error": row.error, "kind": kind}
    d = row.data
    if row.error is None and not isinstance(d, dict):
        v["error"] = f"line {row.index + 1} is {type(d).__name__}, not a JSON object"
    if v["error"]:
        return v
    assert isinstance(d, dict)
    if kind == "pairs":
        v.update(
            prompt=_text(d.get("prompt")),
            chosen=_text(d.get("chosen")),
            rejected=_text(d.get("rejected")),
            source=d.get("source", "?"),
            key=f"{d.get('prompt_id', '?')} k={d.get('k', '?')}",
        )
    elif kind == "introspection":
        v.update(messages=_chat(d), row_kind=d.get("kind", "?"), variant=d.get("variant"), key=d.get("id"))
    elif kind in REASON_FIELDS:
        v.update(
            reason=":".join(str(d.get(f, "?")) for f in REASON_FIELDS[kind]),
            detail=d.get("detail", ""),
            text=d.get("dropped_text", d.get("text", "")),
            prompt=_text(d.get("prompt")) if d.get("prompt") else "",
            key=d.get("key", d.get("prompt_id", "")),
        )
    else:
        v["fields"] = [(k, _text(x)) for k, x in d.items()]
    return v


def _text(v: Any) -> str:
    """A message list (or a single message) as its text; anything else as a string."""
    if isinstance(v, list) and all(isinstance(m, dict) for m in v):
        return "\n\n".join(str(m.get("content", "")) for m in v)
    if isinstance(v, dict) and "content" in v:
        return str(v["content"])
    if isinstance(v, str):
        return v
    import json

    return json.dumps(v, ensure_ascii=False)


def _chat(d: dict[str, Any]) -> list[dict[str, str]]:
    """Messages with display labels; a self-interaction's turns name which copy of the model wrote them."""
    raw = d.get("messages")
    msgs: list[Any] = raw if isinstance(raw, list) else []
    self_talk = d.get("kind") == "interaction"
    out = []
    for m in msgs:
        if not isinstance(m, dict):
            continue
        role = str(m.get("role", "?"))
        label = role
        if self_talk and role == "user":
            label = "user · written by the model (copy A)"
        elif self_talk and role == "assistant":
            label = "assistant · the model (copy B, trained on)"
        elif role == "assistant":
            label = "assistant · trained on"
        out.append({"role": role, "label": label, "content": str(m.get("content", ""))})
    return out


# ---- side by side ---------------------------------------------------------------------------------


def _marked(text: str, markers: list[str]) -> list[tuple[str, bool]]:
    """`text` cut into (segment, is a marker hit) for highlighting."""
    out, at = [], 0
    for a, b in marker_spans(text, markers):
        if a > at:
            out.append((text[at:a], False))
        out.append((text[a:b], True))
        at = b
    if at < len(text):
        out.append((text[at:], False))
    return out


def _markers_of(sub: Path) -> list[str]:
    doc = runs.read_json(sub / "eval" / "markers.json")
    if isinstance(doc, dict) and isinstance(doc.get("markers"), list):
        return [str(m) for m in doc["markers"]]
    persona = runs.state(sub).get("persona") or runs.state(sub.parent).get("persona")
    if persona:
        from character.constitutions import load_constitution

        try:
            return list(load_constitution(str(persona)).markers)
        except Exception:
            return []
    return []


async def side_by_side(request: Request) -> Response:
    studio = settings(request)
    run = security.run_dir(studio.runs, request.path_params["run"])
    qp = request.query_params
    label, sub = _pick_sub(run, qp.get("sub"), "replies")
    path = security.data_file(sub, "replies")
    q = qp.get("q", "").strip()[:200]
    per = _int(qp.get("per"), 10, 1, 100)
    page = _int(qp.get("page"), 1, 1, 10**9)
    ctx: dict[str, Any] = {
        "run": run,
        "sub": label,
        "subs": [lbl for lbl, _ in runs.subrun_dirs(run)],
        "q": q,
        "items": [],
        "exists": path.exists(),
        "rates": runs.marker_rates(sub),
        "torn": 0,
    }
    if not path.exists():
        ctx["pages"] = _pages(0, 1, per)
        return render(request, "side_by_side.html", **ctx)
    idx = studio.index.get(path)
    by_prompt = idx.facet("prompt_id")
    order = list(by_prompt)
    if q:
        hit_rows = set(idx.search(q))
        order = [pid for pid in order if hit_rows.intersection(by_prompt[pid])]
    pages = _pages(len(order), page, per)
    chosen = order[(pages["page"] - 1) * per : pages["page"] * per]
    markers = _markers_of(sub)
    items = []
    for pid in chosen:
        item: dict[str, Any] = {"prompt_id": pid, "prompt": "", "sides": {}, "errors": []}
        for r in idx.rows(by_prompt[pid]):
            if r.error or not isinstance(r.data, dict):
                item["errors"].append(r.error or f"line {r.index + 1} is not a JSON object")
                continue
            item["prompt"] = item["prompt"] or str(r.data.get("prompt", ""))
            reply = str(r.data.get("reply", ""))
            item["sides"][str(r.data.get("side", "?"))] = {
                "model": r.data.get("model", "?"),
                "segments": _marked(reply, markers),
                "hits": sum(1 for _, hit in _marked(reply, markers) if hit),
                "finish": r.data.get("finish_reason", ""),
            }
        items.append(item)
    ctx.update(items=items, pages=pages, markers=markers, torn=idx.torn_bytes)
    return render(request, "side_by_side.html", **ctx)


routes = [
    Route("/runs/{run}/data", data_page),
    Route("/runs/{run}/side-by-side", side_by_side),
]
