"""`character pipeline` argument handling, `character runs list|show`, scales and the launcher."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from character.cli import app
from character.config_layers import resolve
from character.errors import ConfigError, UsageError
from character.runner import Runner
from character.scales import parse_scale, resolve_run
from tests.unit.test_runner import FakeStages

ROOT = Path(__file__).resolve().parents[2]


def test_scales() -> None:
    assert parse_scale("demo") == ("demo", None)
    assert parse_scale("0.25") == (None, 0.25) and parse_scale("25%") == (None, 0.25)
    assert parse_scale("50pct") == (None, 0.5)
    with pytest.raises(ConfigError, match="out of range"):
        parse_scale("2")
    r = resolve_run(scale="0.25", environ={}, overrides={"introspect.reflections": 7})
    assert r.config.distill.pairs == 24 and r.sources["distill.pairs"] == "scale:0.25"
    assert r.config.introspect.reflections == 7  # an explicit value beats the scale
    assert resolve_run(scale="smoke", environ={}).config.pipeline.smoke_only
    paper_q = resolve_run(paper_scale=True, scale="quarter", environ={}).config
    assert paper_q.distill.pairs == 375 and paper_q.lora.r == 64
    for name in ("micro", "half", "full", "demo", "smoke-small", "smoke-large"):
        resolve(presets=[name], environ={})


def test_resume_uses_the_saved_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARACTER_ARTIFACTS", str(tmp_path))
    res = resolve_run(scale="demo", environ={}, overrides={"pipeline.smoke": "none"})
    d = Runner(res, stages=FakeStages().table(), progress=False, until="distill").run().run_dir
    again = resolve_run(resume_dir=d, environ={})
    assert again.config == res.config
    with pytest.raises(UsageError, match="drop --scale"):
        resolve_run(resume_dir=d, scale="demo", environ={})
    with pytest.raises(UsageError, match="not a run directory"):
        resolve_run(resume_dir=tmp_path / "nope", environ={})


def test_pipeline_flag_errors_are_one_line_exit_2(artifacts: Path) -> None:
    cli = CliRunner()
    r = cli.invoke(app, ["pipeline", "remorseful", "--from", "training"])
    assert r.exit_code == 2 and "--from 'training' is not a stage" in r.output
    r = cli.invoke(app, ["pipeline", "nosuchpersona", "--until", "distill"])
    assert r.exit_code == 2 and "no constitution named 'nosuchpersona'" in r.output
    r = cli.invoke(app, ["pipeline", "remorseful", "--scale", "huge"])
    assert r.exit_code == 2 and "unknown preset 'huge'" in r.output
    r = cli.invoke(app, ["pipeline", "remorseful", "--smoke", "tiny"])
    assert r.exit_code == 2 and "pipeline.smoke" in r.output
    assert not (artifacts / "runs").exists()


def test_runs_list_and_show(artifacts: Path) -> None:
    res = resolve(environ={}, overrides={"pipeline.smoke": "small"})
    d = Runner(res, stages=FakeStages().table(), progress=False).run().run_dir
    cli = CliRunner()
    r = cli.invoke(app, ["runs", "list"])
    assert r.exit_code == 0, r.output
    assert d.name in r.output and "done" in r.output and "6/6" in r.output
    r = cli.invoke(app, ["runs", "show", d.name, "--report", "--markdown"])
    assert r.exit_code == 0, r.output
    assert "## smoke-small" in r.output and "Tokens and cost" in r.output and "+50.0" in r.output
    r = cli.invoke(app, ["runs", "show", "nope"])
    assert r.exit_code == 2


def test_ablation_launcher_help() -> None:
    r = subprocess.run([str(ROOT / "scripts" / "run_ablation.sh"), "--help"], capture_output=True, text=True)
    assert r.returncode == 2 and "character ablation" in r.stdout
