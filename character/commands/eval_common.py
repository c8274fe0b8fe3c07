"""Shared pieces of the evaluation commands: config resolution, which checkpoint a command means,
and JSON output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override one setting, e.g. --set eval.max_new_tokens=32 (repeatable)."),
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="A TOML or YAML config file.")]
PersonaOpt = Annotated[
    str | None, typer.Option("--persona", help="Constitution (persona) to evaluate against.")
]
ProgressOpt = Annotated[bool, typer.Option("--no-progress", help="No progress bars.")]
PromptsOpt = Annotated[
    Path | None,
    typer.Option(
        "--prompts",
        help="Prompt file (one a line, or JSONL with 'text'/'id'). Default: the prompt bank's held-out prompts.",
    ),
]


def resolve_cfg(
    ctx: typer.Context, *, sets: list[str] | None = None, config: Path | None = None, **overrides: Any
) -> Any:
    """The run config for a command: global flags, --config, --set, then the command's own flags."""
    from character.cli import options
    from character.config_layers import parse_set_options

    ov = parse_set_options(sets or [])
    ov.update({k.replace("__", "."): v for k, v in overrides.items() if v is not None})
    return options(ctx).resolve(config=config, overrides=ov).config


def checkpoint_ref(checkpoint: str | None, persona: str | None, default: str) -> str:
    """--checkpoint when given; else the production pointer of --persona; else `default`."""
    if checkpoint:
        return checkpoint
    if persona:
        from character import registry

        return registry.production_ref(persona)
    return default


def write_json(path: Path | None, data: Any) -> None:
    if path is None:
        return
    from character.atomic import atomic_write_json

    atomic_write_json(Path(path), data)


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)
