"""Chat with any checkpoint: the page, and `POST /api/chat`, which streams the reply as server-sent
events (`data: {"text": ...}` per piece, then `event: done`, or `event: error` with one line).

No system prompt is sent unless the user sets one (the embedded SmolLM's template then adds its own
default, as everywhere in this project: see `character.chat`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from character import registry
from character.config import RunConfig
from character.errors import CharacterError
from character.models import EMBEDDED
from character.studio.app import render, settings
from character.studio.chat_engine import ChatParams

log = logging.getLogger(__name__)
MAX_NEW_TOKENS = 1024


def _choices() -> list[str]:
    try:
        names = [c.name for c in registry.list_checkpoints()]
    except CharacterError:
        names = []
    return [EMBEDDED, *names]


async def chat_page(request: Request) -> Response:
    e = RunConfig().eval
    return render(
        request,
        "chat.html",
        choices=_choices(),
        selected=request.query_params.get("checkpoint", EMBEDDED),
        defaults={"max_new_tokens": e.max_new_tokens, "temperature": e.temperature},
    )


def _sse(event: str | None, data: dict[str, Any]) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n"


def _params(body: dict[str, Any]) -> ChatParams:
    e = RunConfig().eval
    try:
        max_new = int(body.get("max_new_tokens") or e.max_new_tokens)
        temperature = float(body.get("temperature", e.temperature))
    except (TypeError, ValueError) as err:
        raise CharacterError(f"max_new_tokens and temperature must be numbers ({err})") from err
    if not 1 <= max_new <= MAX_NEW_TOKENS:
        raise CharacterError(f"max_new_tokens = {max_new}: choose 1..{MAX_NEW_TOKENS}")
    if not 0 <= temperature <= 5:
        raise CharacterError(f"temperature = {temperature}: choose 0 (greedy) .. 5")
    seed = body.get("seed")
    return ChatParams(max_new, temperature, e.top_p, int(seed) if isinstance(seed, int) else None)


async def chat_api(request: Request) -> Response:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        return JSONResponse({"error": "send a JSON object: {checkpoint, messages, system?}"}, status_code=400)
    ref = str(body.get("checkpoint") or EMBEDDED)
    system = str(body.get("system") or "").strip()
    history = body.get("messages")
    if not isinstance(history, list) or not history:
        return JSONResponse(
            {"error": "messages must be a non-empty list of {role, content}"}, status_code=400
        )
    messages = ([{"role": "system", "content": system}] if system else []) + history
    try:
        params = _params(body)
        from character.records import validate_messages

        validate_messages(messages, "messages")
        engine = settings(request).chat
        engine.target(ref)
    except CharacterError as e:
        return JSONResponse({"error": " ".join(str(e).split())}, status_code=400)

    def events() -> Iterator[str]:
        try:
            for piece in engine.stream(ref, messages, params):
                yield _sse(None, {"text": piece})
            yield _sse("done", {})
        except Exception as e:  # the stream has started: report in-band, never a broken response
            log.warning("studio chat with %s failed: %s", ref, e)
            yield _sse("error", {"error": " ".join(str(e).split())[:500]})

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


routes = [
    Route("/chat", chat_page),
    Route("/api/chat", chat_api, methods=["POST"]),
]
