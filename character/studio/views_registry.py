"""Checkpoints: the registry with hashes, each persona's production pointer and history, the promotion
log, and promote / rollback through `registry.promote` and `registry.rollback` - the one gate the CLI
uses too (it checks the compare evidence; nothing here decides on its own).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from character import registry
from character.errors import CharacterError
from character.studio.app import render, require_write_token
from character.studio.views_runs import Section


def _name(x: Any) -> str | None:
    """A production/history entry's checkpoint name (a plain name, or a pin with `.name`)."""
    if x is None or isinstance(x, str):
        return x
    if isinstance(x, dict):
        return x.get("name")
    return getattr(x, "name", None)


def _sha(x: Any) -> str | None:
    v = x.get("sha256") if isinstance(x, dict) else getattr(x, "sha256", None)
    return str(v) if v else None


def _table() -> dict[str, Any]:
    reg = registry.load()
    production = {p: _name(v) for p, v in reg.production.items()}
    checkpoints = []
    for c in sorted(reg.checkpoints.values(), key=lambda c: c.created_at, reverse=True):
        checkpoints.append(
            {
                "name": c.name,
                "persona": c.persona,
                "stage": c.stage,
                "kind": c.kind,
                "verified": c.verified,
                "sha256": _sha(c),
                "created_at": c.created_at,
                "path": c.path,
                "exists": Path(c.path).exists(),
                "run": c.run,
                "production": production.get(c.persona) == c.name,
                "metrics": json.dumps(c.metrics, indent=1, default=str)[:4000] if c.metrics else "",
            }
        )
    personas = sorted({c.persona for c in reg.checkpoints.values()} | set(reg.production))
    pointers = [
        {
            "persona": p,
            "production": production.get(p),
            "sha256": _sha(reg.production.get(p)),
            "history": [_name(h) for h in reversed(reg.history.get(p, []))],
        }
        for p in personas
    ]
    log = [e.model_dump(mode="json") for e in reversed(reg.log)][:50]
    return {"checkpoints": checkpoints, "pointers": pointers, "log": log, "path": registry.registry_path()}


async def checkpoints_page(request: Request) -> Response:
    return render(request, "checkpoints.html", table=Section("registry", _table))


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    return body if isinstance(body, dict) else {}


def _refused(e: Exception) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(e).split())}, status_code=400)


async def _change_production(
    request: Request, key: str, missing: str, change: Callable[[str, dict[str, Any]], Any]
) -> Response:
    """Promote and rollback alike: the write token, the one required body field, the registry call
    (its refusal is a 400 with the registry's own words), and the new pointer as one line."""
    require_write_token(request)
    body = await _body(request)
    value = str(body.get(key) or "").strip()
    if not value:
        return JSONResponse({"error": missing}, status_code=400)
    try:
        ev = change(value, body)
    except CharacterError as e:
        return _refused(e)
    prev = _name(getattr(ev, "previous", None))
    return JSONResponse(
        {
            "ok": True,
            "message": f"production[{ev.persona}] = {_name(ev.name) or ev.name} (was {prev or 'none'})",
        }
    )


async def promote(request: Request) -> Response:
    return await _change_production(
        request,
        "name",
        "promote needs a checkpoint name",
        lambda name, body: registry.promote(
            name, force=bool(body.get("force")), reason=str(body.get("reason") or "")
        ),
    )


async def rollback(request: Request) -> Response:
    return await _change_production(
        request,
        "persona",
        "rollback needs a persona",
        lambda persona, body: registry.rollback(persona, reason=str(body.get("reason") or "")),
    )


routes = [
    Route("/checkpoints", checkpoints_page),
    Route("/api/checkpoints/promote", promote, methods=["POST"]),
    Route("/api/checkpoints/rollback", rollback, methods=["POST"]),
]
