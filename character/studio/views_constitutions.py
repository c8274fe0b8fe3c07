"""Constitutions: list with lint counts, view and edit with live lint results (`character.constitutions`
lint, the rules `character constitution lint` applies), and create from the commented template that
`character constitution new` writes. Saving and creating need the Studio token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from character.atomic import atomic_write_text
from character.constitution_io import skeleton
from character.constitutions import Finding, check_name, lint_text
from character.errors import CharacterError
from character.studio import security
from character.studio.app import render, require_write_token, settings
from character.studio.views_runs import Section

MAX_BYTES = 1_000_000


def _path(request: Request, name: str) -> Path:
    try:
        check_name(name)
    except CharacterError as e:
        raise security.Forbidden(name) from e
    root = settings(request).constitutions
    return security.under(root, root / f"{name}.yaml")


def _findings(fs: list[Finding]) -> list[dict[str, Any]]:
    return [
        {
            "rule": f.rule,
            "name": f.name,
            "severity": f.severity,
            "message": f.message,
            "line": f.line,
            "text": f.text,
        }
        for f in fs
    ]


def _listing(root: Path) -> list[dict[str, Any]]:
    out = []
    for p in sorted(root.glob("*.yaml")):
        _c, fs = lint_text(p.read_text(errors="replace"), p.name)
        out.append(
            {
                "name": p.stem,
                "errors": sum(f.severity == "error" for f in fs),
                "warnings": sum(f.severity == "warning" for f in fs),
                "chars": p.stat().st_size,
            }
        )
    return out


async def constitutions_page(request: Request) -> Response:
    root = settings(request).constitutions
    return render(
        request, "constitutions.html", listing=Section("constitutions", lambda: _listing(root)), root=root
    )


async def constitution_page(request: Request) -> Response:
    name = request.path_params["name"]
    path = _path(request, name)
    if not path.is_file():
        raise security.Forbidden(name)
    text = path.read_text(errors="replace")
    _c, fs = lint_text(text, path.name)
    return render(request, "constitution.html", name=name, text=text, findings=_findings(fs), path=path)


async def _text_body(request: Request) -> tuple[str | None, dict[str, Any]]:
    raw = await request.body()
    if len(raw) > MAX_BYTES:
        return None, {}
    try:
        import json

        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None, {}
    if not isinstance(body, dict):
        return None, {}
    text = body.get("text")
    return (text if isinstance(text, str) else None), body


async def lint_api(request: Request) -> Response:
    """Lint text as typed (nothing is written, so no token is needed)."""
    text, _ = await _text_body(request)
    if text is None:
        return JSONResponse({"error": 'send {"text": "...yaml..."} (at most 1 MB)'}, status_code=400)
    _c, fs = lint_text(text, "editor")
    return JSONResponse({"findings": _findings(fs)})


async def save_api(request: Request) -> Response:
    require_write_token(request)
    name = request.path_params["name"]
    path = _path(request, name)
    text, _ = await _text_body(request)
    if text is None:
        return JSONResponse({"error": 'send {"text": "...yaml..."} (at most 1 MB)'}, status_code=400)
    c, fs = lint_text(text, path.name)
    if c is None:
        return JSONResponse(
            {"error": f"not saved: {fs[0].message}", "findings": _findings(fs)}, status_code=400
        )
    if c.name != name:
        return JSONResponse(
            {
                "error": f"not saved: the file is {name}.yaml but its text says name: {c.name}; make them match"
            },
            status_code=400,
        )
    atomic_write_text(path, text)
    errors = sum(f.severity == "error" for f in fs)
    note = f" with {errors} lint error(s): fix them before training" if errors else ""
    return JSONResponse({"ok": True, "message": f"saved {path.name}{note}", "findings": _findings(fs)})


async def create_api(request: Request) -> Response:
    require_write_token(request)
    _, body = await _text_body(request)
    name = str(body.get("name") or "").strip()
    try:
        check_name(name)
    except CharacterError as e:
        return JSONResponse({"error": " ".join(str(e).split())}, status_code=400)
    path = _path(request, name)
    if path.exists():
        return JSONResponse({"error": f"{path.name} already exists: open it and edit it"}, status_code=400)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, skeleton(name))
    return JSONResponse({"ok": True, "url": f"/constitutions/{name}", "message": f"created {path.name}"})


routes = [
    Route("/constitutions", constitutions_page),
    Route("/constitutions/{name}", constitution_page),
    Route("/api/constitutions", create_api, methods=["POST"]),
    Route("/api/lint", lint_api, methods=["POST"]),
    Route("/api/constitutions/{name}", save_api, methods=["POST"]),
]
