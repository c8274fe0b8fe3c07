"""Bad input is one clear line and a non-zero exit, never a traceback (issue #13's two reports), run
as a user runs them: `python -m character.cli` in a subprocess."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import run_cli


def _lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def test_sample_with_a_missing_checkpoint_dir_is_one_line(artifacts: Path) -> None:
    r = run_cli("sample", "hi", "--checkpoint", "/no/such/dir", artifacts=artifacts, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 2 and "Traceback" not in out
    assert _lines(out) == [
        "error: checkpoint '/no/such/dir' does not exist: give a model directory, a PEFT adapter directory, "
        "a registry name (`character checkpoint list`) or `embedded`"
    ]


def test_lint_of_a_binary_file_is_one_finding_not_a_traceback(artifacts: Path, tmp_path: Path) -> None:
    binary = tmp_path / "persona.yaml"
    binary.write_bytes(os.urandom(2048).replace(b"\n", b"\xff") + b"\xff")  # never valid UTF-8
    r = run_cli("constitution", "lint", str(binary), artifacts=artifacts, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 1 and "Traceback" not in out
    finding, summary = _lines(out)  # the lint's finding line, then its usual count line
    assert finding.startswith(f"{binary}: error C000") and "is not UTF-8 text" in finding
    assert summary.startswith("linted 1 constitution(s): 1 error(s)")
    # Any other command reading it as a constitution says the same in one line.
    r = run_cli("constitution", "show", str(binary), artifacts=artifacts, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stdout + r.stderr
    assert len(_lines(r.stdout + r.stderr)) == 1 and "is not UTF-8 text" in r.stderr
