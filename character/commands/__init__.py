"""Command groups. Each module exposes `register(app)` and stays thin: resolve config, call a stage.

Groups shared by several areas (`generate`, `train`, `data`) live in their own module and import the
per-area command modules listed there; a missing module is skipped, so areas land independently.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def import_optional(name: str) -> ModuleType | None:
    """Import character.commands.<name> if it exists (an area that has not landed yet is skipped)."""
    full = f"character.commands.{name}"
    try:
        return importlib.import_module(full)
    except ModuleNotFoundError as e:
        if e.name != full:
            raise
        return None
