"""JSONL rows and the append-only store every generation stage writes through.

Rows are appended in batches, each batch flushed and fsync'd, so a killed run loses at most the batch
in flight. On open, a torn last line (a crash mid-write) is cut off, and `keys()` tells a resumed run
exactly which `(prompt_id, k)`-style keys are already done: no duplicate, no gap.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from character.errors import DataError

log = logging.getLogger(__name__)

Message = dict[str, str]


def validate_messages(messages: list[Message], where: str = "messages") -> None:
    """Conversations are lists of {role, content}; anything else is a data error."""
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where} must be a non-empty list of {{role, content}} messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or set(m) - {"role", "content"} or "role" not in m or "content" not in m:
            raise DataError(f"{where}[{i}] must be {{'role': ..., 'content': ...}}, got {m!r}")
        if m["role"] not in ("system", "user", "assistant"):
            raise DataError(f"{where}[{i}].role must be system, user or assistant, got {m['role']!r}")
        if not isinstance(m["content"], str):
            raise DataError(f"{where}[{i}].content must be a string")


class JsonlStore:
    """Append-only JSONL file keyed by a tuple of fields."""

    def __init__(self, path: Path, key_fields: tuple[str, ...] = ()):
        self.path = Path(path)
        self.key_fields = key_fields
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.repaired_bytes = self.repair()

    def repair(self) -> int:
        """Cut a torn last line (no trailing newline, or not valid JSON). Returns bytes removed."""
        if not self.path.exists():
            return 0
        data = self.path.read_bytes()
        if not data:
            return 0
        keep = len(data)
        if not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
        else:
            last_start = data.rfind(b"\n", 0, len(data) - 1) + 1
            try:
                json.loads(data[last_start:])
            except json.JSONDecodeError:
                keep = last_start
        removed = len(data) - keep
        if removed:
            with open(self.path, "r+b") as f:
                f.truncate(keep)
                f.flush()
                os.fsync(f.fileno())
            log.warning("repaired %s: dropped a torn last line (%d bytes)", self.path, removed)
        return removed

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with open(self.path) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(
                        f"{self.path}:{n} is not valid JSON ({e}); fix or remove that line"
                    ) from e

    def read(self) -> list[dict[str, Any]]:
        return list(self)

    def key(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(row[k] for k in self.key_fields)

    def keys(self) -> set[tuple[Any, ...]]:
        return {self.key(r) for r in self}

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def append(self, rows: Iterable[dict[str, Any]]) -> int:
        lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in rows]
        if not lines:
            return 0
        with open(self.path, "a") as f:
            f.write("".join(lines))
            f.flush()
            os.fsync(f.fileno())
        return len(lines)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not Path(path).exists():
        raise DataError(f"{path} does not exist")
    return JsonlStore(path).read()


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write a whole JSONL file atomically (for derived files, not for resumable generation)."""
    from character.atomic import atomic_write_text

    lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in rows]
    atomic_write_text(Path(path), "".join(lines))
    return len(lines)
