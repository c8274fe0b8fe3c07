"""One progress bar for every long loop (generation, training, evaluation): rate, ETA, extra fields.

Disabled when `enabled=False`, when CHARACTER_NO_PROGRESS=1, or when stderr is not a terminal and
nothing asked for it, so logs and CI output stay clean.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class _Bar:
    def __init__(self, progress: Progress | None, task: Any):
        self._p = progress
        self._task = task

    def advance(self, n: int = 1, **fields: float) -> None:
        if self._p is not None:
            info = "  ".join(f"{k.replace('_', '/')} {v:,.1f}" for k, v in fields.items())
            self._p.update(self._task, advance=n, info=info)


def _wanted(enabled: bool) -> bool:
    if not enabled or os.environ.get("CHARACTER_NO_PROGRESS") == "1":
        return False
    return sys.stderr.isatty()


@contextlib.contextmanager
def progress_bar(description: str, total: int | None, *, enabled: bool = True) -> Iterator[_Bar]:
    if not _wanted(enabled):
        yield _Bar(None, None)
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as p:
        task = p.add_task(description, total=total, info="")
        yield _Bar(p, task)
