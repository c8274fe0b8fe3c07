"""Global options reach the command through every entry point.

`python -m character.cli` (how tests/conftest.py's run_cli starts the CLI) runs cli.py as `__main__`,
a second copy of the module: its GlobalOptions was not the class the commands check, so
`--paper-scale` was silently dropped there (a paper-scale pipeline started at default sizes).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, cli_env


@pytest.mark.parametrize("module", ["character.cli", "character"])
def test_paper_scale_reaches_the_command(module: str, tmp_path: Path) -> None:
    import subprocess

    r = subprocess.run(
        [sys.executable, "-m", module, "--paper-scale", "info"],
        env=cli_env(tmp_path, COLUMNS="200"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    row = next(ln for ln in r.stdout.splitlines() if re.search(r"│ lora\.r\s+│", ln))
    assert re.search(r"│ lora\.r\s+│ 64\s+│.*preset:paper", row), row
