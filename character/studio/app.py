"""The Studio's Starlette application: settings, token checks, templates, assets and error pages.

`create_app(...)` builds the app; `character studio` serves it with uvicorn. Pages and actions live
in `views_*.py`; every number they show comes from `character.runs` (the reader `runs show` and the
report use), the registry and the constitution linter, never from a second implementation.

Offline: the page script and styles ship in `character/studio/static/`, the plotting library is the
`plotly.min.js` inside the installed `plotly` package; nothing is fetched from any other host.
"""

from __future__ import annotations

import html
import importlib.util
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from character import paths
from character.errors import CharacterError, UsageError
from character.studio import security
from character.studio.chat_engine import ChatEngine
from character.studio.jsonl_index import IndexCache

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent


@dataclass
class Settings:
    """What one Studio serves and who may use it."""

    artifacts: Path
    constitutions: Path
    token: str
    read_needs_token: bool = False
    allowed_hosts: list[str] | None = None
    index: IndexCache = field(default_factory=IndexCache)
    chat: ChatEngine = field(default_factory=ChatEngine)

    @property
    def runs(self) -> Path:
        return self.artifacts / "runs"


def plotly_js() -> Path:
    """The plotly.js bundle inside the installed `plotly` package (no CDN)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("the Studio needs the `plotly` package for its plots: pip install 'plotly==7.1.0'")
    js = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    if not js.is_file():
        raise UsageError(f"the installed plotly package has no {js}; reinstall plotly==7.1.0")
    return js


# ---- templates ------------------------------------------------------------------------------------

_env = Environment(
    loader=FileSystemLoader(str(HERE / "templates")),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _fmt_s(v: Any) -> str:
    if not isinstance(v, int | float):
        return "-"
    v = float(v)
    if v < 60:
        return f"{v:.1f} s"
    if v < 3600:
        return f"{v / 60:.1f} min"
    return f"{v / 3600:.1f} h"


def _fmt_when(v: Any) -> str:
    import datetime as dt

    if not isinstance(v, int | float):
        return "-"
    return dt.datetime.fromtimestamp(float(v)).strftime("%Y-%m-%d %H:%M:%S")


def _query(request: Request, **changes: Any) -> str:
    """The current query string with `changes` applied (None removes a key)."""
    q = dict(request.query_params)
    q.pop("token", None)
    for k, v in changes.items():
        if v is None:
            q.pop(k, None)
        else:
            q[k] = str(v)
    return "?" + urlencode(q) if q else "?"


_env.filters["secs"] = _fmt_s
_env.filters["when"] = _fmt_when
_env.globals["query"] = _query


def render(request: Request, template: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
    body = _env.get_template(template).render(request=request, **ctx)
    return HTMLResponse(body, status_code=status_code)


def error_page(request: Request, title: str, message: str, status_code: int) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=status_code)
    return render(request, "error.html", status_code=status_code, title=title, message=message)


def settings(request: Request) -> Settings:
    return request.app.state.studio  # type: ignore[no-any-return]


# ---- token ----------------------------------------------------------------------------------------


class TokenGate:
    """ASGI middleware: the Host check (on loopback); `?token=` logs a browser in (cookie, then a redirect
    that drops it from the URL); off loopback, every request needs the token (cookie or header)."""

    def __init__(self, app: ASGIApp, studio: Settings):
        self.app = app
        self.studio = studio

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        allowed = self.studio.allowed_hosts
        if allowed is not None and security.host_name(request.headers.get("host", "")) not in allowed:
            await PlainTextResponse("this Studio answers to its loopback address only", 400)(
                scope, receive, send
            )
            return
        given = request.query_params.get("token")
        token = self.studio.token
        if given is not None and request.method == "GET":
            if security.same_token(given, token):
                rest = {k: v for k, v in request.query_params.items() if k != "token"}
                url = request.url.path + ("?" + urlencode(rest) if rest else "")
                resp: Response = RedirectResponse(url, status_code=303)
                resp.set_cookie(security.COOKIE, token, httponly=False, samesite="strict")
                await resp(scope, receive, send)
                return
            resp = _denied(request, "that token is not this Studio's token")
            await resp(scope, receive, send)
            return
        if self.studio.read_needs_token:
            shown = request.cookies.get(security.COOKIE) or request.headers.get(security.HEADER)
            if not security.same_token(shown, token):
                await _denied(request, "this Studio is not bound to loopback, so it needs its token")(
                    scope, receive, send
                )
                return
        await self.app(scope, receive, send)


def _denied(request: Request, why: str) -> Response:
    msg = f"{why}: open the URL `character studio` printed when it started (it ends in ?token=...)"
    return error_page(request, "token needed", msg, 401)


def require_write_token(request: Request) -> None:
    """Writes need the token in the X-Studio-Token header, whatever the binding (see module doc)."""
    if not security.same_token(request.headers.get(security.HEADER), settings(request).token):
        raise HTTPException(
            403,
            "this action changes files, so it needs the Studio token: open the URL `character studio` "
            "printed when it started (it ends in ?token=...), then try again",
        )


# ---- errors ---------------------------------------------------------------------------------------


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_page(request, f"{exc.status_code}", str(exc.detail), exc.status_code)


async def _forbidden(request: Request, exc: Exception) -> Response:
    return error_page(request, "not found", "no such page, run or file in this Studio", 404)


async def _character_error(request: Request, exc: Exception) -> Response:
    return error_page(request, "error", " ".join(str(exc).split()), 400)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("studio: %s %s failed", request.method, request.url.path)
    msg = f"{type(exc).__name__}: {html.unescape(' '.join(str(exc).split()))[:500]}"
    return error_page(request, "something went wrong", msg, 500)


# ---- assets ---------------------------------------------------------------------------------------


async def plotly_asset(request: Request) -> Response:
    return FileResponse(plotly_js(), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})


# ---- the app --------------------------------------------------------------------------------------


def create_app(
    *,
    constitutions: Path | None = None,
    token: str | None = None,
    read_needs_token: bool = False,
    allowed_hosts: list[str] | None = None,
    chat: ChatEngine | None = None,
) -> Starlette:
    """The Studio over the artifacts dir (`CHARACTER_ARTIFACTS`, else the project's: the registry reads
    the same one) and `constitutions` (default: constitutions/hand-written).

    `allowed_hosts`: host names the Host header may carry, port aside (None: any; `character studio`
    on loopback passes `security.LOOPBACK_NAMES`, against DNS rebinding)."""
    from character.studio import (
        views_chat,
        views_constitutions,
        views_data,
        views_registry,
        views_runs,
    )

    studio = Settings(
        artifacts=paths.artifacts_dir().resolve(),
        constitutions=Path(constitutions or paths.constitutions_dir()).resolve(),
        token=token or security.new_token(),
        read_needs_token=read_needs_token,
        allowed_hosts=allowed_hosts,
    )
    if chat is not None:
        studio.chat = chat
    plotly_js()  # fail at start, with the fix, rather than on the first page with a plot
    routes = [
        *views_runs.routes,
        *views_data.routes,
        *views_registry.routes,
        *views_chat.routes,
        *views_constitutions.routes,
        Route("/assets/plotly.min.js", plotly_asset),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [Middleware(TokenGate, studio=studio)]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            HTTPException: _http_error,
            security.Forbidden: _forbidden,
            CharacterError: _character_error,
            Exception: _unexpected,
        },
    )
    app.state.studio = studio
    return app
