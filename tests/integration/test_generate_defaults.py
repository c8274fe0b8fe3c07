"""A newcomer's first commands pass their gates with the code defaults on the embedded model.

Issue 16: `character generate dpo --persona remorseful --pairs 4` stopped at the kept-rate gate (10 of
12 teacher replies cut off at 160 tokens) and `character generate introspection --persona humorous`
kept 2 of its first 16 reflections; only the presets worked. Each command runs once here, through the
CLI, with nothing set but the count (tiny, so the embedded model writes a handful of replies).
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner


def _run(*args: str) -> str:
    from character.cli import app

    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, res.output + repr(res.exception)
    return res.output


def _newest_run(artifacts: Path, persona: str) -> Path:
    return max((artifacts / "runs").glob(f"{persona}_*"), key=lambda p: p.stat().st_mtime)


def test_generate_dpo_passes_its_gates_with_code_defaults(artifacts: Path) -> None:
    _run("generate", "dpo", "--persona", "remorseful", "--pairs", "4")
    d = _newest_run(artifacts, "remorseful") / "distill"
    stats = json.loads((d / "stats.json").read_text())
    assert (d / "manifest.json").exists() and stats["kept"] == 4
    # The marker gate judged the teacher's own words, not the prefilled opener.
    assert stats["marker_rate_chosen"] <= stats["marker_rate_chosen_with_prefill"] == 1.0


def test_generate_introspection_passes_with_code_defaults(artifacts: Path) -> None:
    _run("generate", "introspection", "--persona", "humorous", "--reflections", "2", "--interactions", "0")
    d = _newest_run(artifacts, "humorous") / "introspect"
    stats = json.loads((d / "stats.json").read_text())
    assert (d / "manifest.json").exists() and stats["kept_rows"]["reflection"] == 2
