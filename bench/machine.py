"""What the shared machine was doing while a bench ran: every figure is printed next to /proc/loadavg.

Imported by the scripts beside it (`python bench/X.py` puts this folder on sys.path)."""

from __future__ import annotations

from pathlib import Path


def loadavg() -> str:
    """The 1/5/15-minute load averages, e.g. "1.48 1.09 1.23" ("n/a" where /proc is missing)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"
