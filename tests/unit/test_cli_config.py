"""The CLI boundary: info/config commands, provenance shown, one-line errors with exit codes."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from character.cli import app
from character.config_layers import flatten, get_value, leaf_keys, read_preset, resolve

runner = CliRunner()


def _rows(output: str) -> dict[str, list[str]]:
    """{key: cells} of the settings table; a value wrapped onto continuation lines is joined back, so a
    long list (e.g. sanity.prompts) compares equal however wide the other columns made it wrap."""
    rows: dict[str, list[str]] = {}
    keys = set(leaf_keys())
    last: list[str] | None = None
    for line in output.splitlines():
        raw = re.split(r"[│┃]", line)[1:-1]
        cells = [c.strip() for c in raw]
        if len(cells) >= 4 and cells[0] in keys:
            last = rows[cells[0]] = cells
        elif last is not None and len(cells) == len(last) and not cells[0] and cells[1]:
            last[1] = f"{last[1]} {cells[1]}"
        else:
            last = None
    return {k: [c for c in v if c] for k, v in rows.items()}


def test_info_and_paper_scale_info_differ_exactly_in_paper_values() -> None:
    env = {"COLUMNS": "250"}
    plain = runner.invoke(app, ["info"], env=env)
    paper = runner.invoke(app, ["--paper-scale", "info"], env=env)
    assert plain.exit_code == 0 and paper.exit_code == 0, plain.output + paper.output
    a, b = _rows(plain.output), _rows(paper.output)
    # Unset roles.* keys inherit [backend]; info shows them in its roles table instead (test_backend_roles).
    keys = {k for k in leaf_keys() if not k.startswith("roles.")}
    assert set(a) == keys == set(b)
    changed = {k for k in a if a[k][1] != b[k][1]}
    defaults = resolve(environ={}).config
    expected = {k for k, v in flatten(read_preset("paper"), "paper").items() if get_value(defaults, k) != v}
    assert changed == expected
    assert all(b[k][3] == "preset:paper" for k in expected)


def test_env_override_is_shown_with_env_source() -> None:
    res = runner.invoke(app, ["info"], env={"COLUMNS": "250", "CHARACTER_DPO__BETA": "0.25"})
    row = _rows(res.output)["dpo.beta"]
    assert row[1] == "0.25" and row[3] == "env:CHARACTER_DPO__BETA"


def test_config_show_prints_toml(tmp_path: Path) -> None:
    res = runner.invoke(app, ["config", "show", "--scale", "smoke-small"])
    assert res.exit_code == 0
    assert "pairs = 8" in res.output


def test_config_validate_reports_unknown_key(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text("[sft]\nmax_len = 3\n")
    res = runner.invoke(app, ["config", "validate", str(f)])
    assert res.exit_code == 2
    assert "sft.max_len" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_config_validate_ok(tmp_path: Path) -> None:
    f = tmp_path / "ok.toml"
    f.write_text("[sft]\nmax_length = 512\n")
    res = runner.invoke(app, ["config", "validate", str(f)])
    assert res.exit_code == 0, res.output


def test_unknown_preset_is_a_usage_error() -> None:
    res = runner.invoke(app, ["info", "--scale", "huge"])
    assert res.exit_code == 2
    assert "unknown preset 'huge'" in res.stderr


def test_help_at_every_level() -> None:
    for args in (["--help"], ["config", "--help"], ["models", "--help"], ["info", "--help"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 0 and "Usage" in res.output
