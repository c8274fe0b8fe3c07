"""Fixtures shared by unit-test modules (the suite-wide ones are in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def art(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated artifacts dir with an empty runs/ and no model: for tests that read run files (the
    Studio), where `artifacts` would link the embedded model for nothing."""
    root = tmp_path / "artifacts"
    (root / "runs").mkdir(parents=True)
    monkeypatch.setenv("CHARACTER_ARTIFACTS", str(root))
    return root
