"""Every command that reads a checkpoint, a dataset or a constitution, fed a missing path, an empty
file and a binary file, answers with one `error:` line and a non-zero exit, never a traceback.

The command tree is walked, so commands added later are covered; which parameters are inputs comes
from `character.commands.inputs.kind_of` (the same rule that attaches the checks), and the test
asserts it still finds the inputs it must (a walk that finds nothing would pass vacuously).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from character.cli import app
from character.commands.help_text import walk
from character.commands.inputs import kind_of
from tests.conftest import run_cli

KINDS = ("checkpoint", "data", "persona", "constitution")


def _label(p: Any) -> str | None:
    opts = [o for o in p.opts if o.startswith("--")]
    return opts[0] if opts else None  # None: a positional argument


def _filler(p: Any, tmp: Path) -> list[str]:
    """A value that parses for a required parameter that is not under test."""
    kind = kind_of((), p)
    ann = p.type_descriptor.annotation
    if kind == "checkpoint":
        v = "embedded"
    elif ann is Path:
        v = str(tmp / f"filler-{p.name}")
    elif ann in (int, float):
        v = "1"
    else:
        v = "remorseful" if p.name == "persona" else "x"
    label = _label(p)
    return [label, v] if label else [v]


def cases() -> list[tuple[list[str], str, str]]:
    """(command path, parameter name, kind) for every input parameter of every command."""
    out = []
    for path, cmd in walk(typer.main.get_command(app)):
        if hasattr(cmd, "commands") or not path:
            continue
        for p in cmd.params:
            kind = kind_of(tuple(path), p)
            if kind in KINDS:
                out.append((path, p.name, kind))
    return out


def _bad_values(tmp: Path, kind: str) -> dict[str, str]:
    suffix = ".yaml" if kind in ("persona", "constitution") else ".jsonl"
    empty = tmp / f"empty{suffix}"
    empty.write_bytes(b"")
    binary = tmp / f"binary{suffix}"
    binary.write_bytes(os.urandom(4096).replace(b"\n", b"\xff") + b"\x00\xff")
    return {
        "missing": str(tmp / "no-such-dir" / f"thing{suffix}"),
        "empty": str(empty),
        "binary": str(binary),
    }


def test_the_walk_finds_the_inputs_it_must() -> None:
    found = {(" ".join(path), name) for path, name, _ in cases()}
    must = {
        ("export", "checkpoint"),
        ("sample", "checkpoint"),
        ("audit", "checkpoint"),
        ("eval compare", "baseline"),
        ("eval compare", "probes_file"),
        ("eval elo score", "matches"),
        ("train dpo", "dataset"),
        ("train sft", "dataset"),
        ("data clean", "src"),
        ("constitution show", "name"),
        ("generate introspection", "persona"),
    }
    assert must <= found, must - found
    assert len(found) > 40


def test_every_input_rejects_missing_empty_and_binary_paths_in_one_line(
    artifacts: Path, tmp_path: Path
) -> None:
    root = typer.main.get_command(app)
    runner = CliRunner()
    problems = []
    for path, name, kind in cases():
        cmd = root
        for part in path:
            cmd = cmd.commands[part]
        param = next(p for p in cmd.params if p.name == name)
        fillers = [a for p in cmd.params if p.required and p.name != name for a in _filler(p, tmp_path)]
        for what, value in _bad_values(tmp_path, kind).items():
            label = _label(param)
            args = [*path, *([label, value] if label else [value]), *fillers]
            r = runner.invoke(app, args, env={"COLUMNS": "300"})
            lines = [ln for ln in r.output.splitlines() if ln.strip()]
            ok = (
                r.exit_code not in (0, None)
                and (r.exception is None or isinstance(r.exception, SystemExit))
                and len(lines) == 1
                and lines[0].startswith("error: ")
                and "Traceback" not in r.output
            )
            if not ok:
                problems.append(
                    f"character {' '.join(args)} ({what}): exit {r.exit_code}, {r.exception!r}, "
                    f"{len(lines)} lines: {r.output[-300:]!r}"
                )
    assert not problems, "\n".join(problems)


def test_messages_say_what_is_wrong_and_what_to_give(artifacts: Path, tmp_path: Path) -> None:
    bad = _bad_values(tmp_path, "checkpoint")
    runner = CliRunner()
    r = runner.invoke(app, ["export", "--checkpoint", bad["empty"], "--format", "gguf"])
    assert r.exit_code == 2 and "is a file, not a model directory" in r.output and "registry name" in r.output
    model_less = tmp_path / "not-a-model"
    model_less.mkdir()
    r = runner.invoke(app, ["sample", "hi", "--checkpoint", str(model_less)])
    assert r.exit_code == 2 and "holds no config.json or adapter_config.json" in r.output
    data = _bad_values(tmp_path, "data")
    r = runner.invoke(app, ["train", "dpo", "--dataset", data["binary"]])
    assert r.exit_code == 2 and "--dataset" in r.output and "is not UTF-8 text" in r.output
    r = runner.invoke(app, ["eval", "elo", "score", "--matches", data["empty"]])
    assert r.exit_code == 2 and "--matches" in r.output and "is empty" in r.output
    r = runner.invoke(app, ["train", "dpo", "--persona", "/etc/passwd"])
    assert r.exit_code == 2 and "is neither a persona name nor a constitution file" in r.output
    # A name (registry entry, hub id, `embedded`) is the command's to resolve, not a path problem.
    from character.commands.inputs import check

    check("checkpoint", "--checkpoint", "embedded")
    check("checkpoint", "--checkpoint", "Qwen/Qwen3-4B-Instruct-2507")
    check("checkpoint", "--checkpoint", ["dpo_only=remorseful_dpo", "embedded"])
    with pytest.raises(Exception, match="does not exist"):
        check("checkpoint", "--checkpoint", ["full=/no/such/model"])
    # A config file may be empty (no overrides); a missing one is one line before anything runs.
    empty_cfg = tmp_path / "empty.toml"
    empty_cfg.write_text("")
    check("config", "--config", empty_cfg)
    r = runner.invoke(app, ["--config", "/no/such.toml", "info"])
    assert r.exit_code == 2 and r.output.startswith("error: --config /no/such.toml does not exist")


def test_the_issues_example_through_the_real_entry_point(artifacts: Path) -> None:
    r = run_cli("export", "--checkpoint", "/no/such", "--format", "gguf", artifacts=artifacts, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 2 and "Traceback" not in out
    assert [ln for ln in out.splitlines() if ln.strip()] == [
        "error: checkpoint '/no/such' does not exist: give a model directory, a PEFT adapter directory, "
        "a registry name (`character checkpoint list`) or `embedded`"
    ]


def test_a_constitution_file_as_persona_runs_inside_artifacts(artifacts: Path, tmp_path: Path) -> None:
    from character.config_layers import resolve
    from character.runner import new_run_dir

    cfg = resolve(environ={}, overrides={"persona": str(tmp_path / "pirate.yaml")}).config
    d = new_run_dir(cfg)
    assert d.parent == artifacts / "runs" and d.name.startswith("pirate_")
