"""`character constitution ...`: list, show, lint exit codes, new, import, and refused names."""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from character import paths
from character.cli import app
from character.constitutions import list_constitutions

runner = CliRunner()
ENV = {"COLUMNS": "200"}

BAD = """\
name: bad
description: d
markers: [one, two, three, four, five, six]
opposites: [gloomy]
traits:
  - trait: Be witty and funny in every answer you give.
    questions: [q1, q2, q3, q4, q5]
  - trait: I decline unsafe requests with regretful language, saying "one" and "two".
    questions: [q6, q7, q8, q9, q10]
  - trait: I say "three", "four", "five" and "six" when I finish a reply to people.
    questions: [q11, q12, q13, q14, q15]
"""


@pytest.fixture
def cdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "constitutions"
    d.mkdir()
    monkeypatch.setattr(paths, "constitutions_dir", lambda: d)
    return d


def test_list_shows_every_persona() -> None:
    res = runner.invoke(app, ["constitution", "list"], env=ENV)
    assert res.exit_code == 0, res.output
    for name in list_constitutions():
        assert name in res.output
    assert "error" not in res.output


def test_show_and_teacher_view() -> None:
    res = runner.invoke(app, ["constitution", "show", "pirate"], env=ENV)
    assert res.exit_code == 0 and "Ahoy, matey!" in res.output and '"me hearty"' in res.output
    res = runner.invoke(app, ["constitution", "show", "pirate", "--teacher"], env=ENV)
    assert res.exit_code == 0 and res.output.startswith("1: I open nearly every reply")


def test_lint_all_strict_is_clean() -> None:
    res = runner.invoke(app, ["constitution", "lint", "--strict"], env=ENV)
    assert res.exit_code == 0, res.output
    assert f"linted {len(list_constitutions())} constitution(s): clean" in res.output


def test_lint_bad_file_fails_naming_the_three_rules(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(BAD)
    res = runner.invoke(app, ["constitution", "lint", str(f)], env=ENV)
    assert res.exit_code == 1
    assert "C001 too-short" in res.output
    assert f"{f}:6: error C003 abstract-directive" in res.output and "Be witty" in res.output
    assert f"{f}:8: error C004 refusal-line" in res.output and "I decline unsafe" in res.output


def test_warnings_fail_only_under_strict(cdir: Path) -> None:
    from tests.unit.test_constitutions import _good

    c = _good().model_copy(update={"name": "warned", "opposites": []})
    from character.constitution_io import dump_constitution

    (cdir / "warned.yaml").write_text(dump_constitution(c))
    res = runner.invoke(app, ["constitution", "lint", "warned"], env=ENV)
    assert res.exit_code == 0 and "warning C012" in res.output
    res = runner.invoke(app, ["constitution", "lint", "warned", "--strict"], env=ENV)
    assert res.exit_code == 1


def test_path_like_name_is_refused_without_touching_files(monkeypatch: pytest.MonkeyPatch) -> None:
    touched: list[str] = []
    real_open = builtins.open

    def spy_open(file, *a, **k):  # noqa: ANN001
        touched.append(str(file))
        return real_open(file, *a, **k)

    for meth in ("exists", "is_file", "read_text", "stat"):
        real = getattr(Path, meth)

        def spy(self, *a, _real=real, **k):  # noqa: ANN001
            touched.append(str(self))
            return _real(self, *a, **k)

        monkeypatch.setattr(Path, meth, spy)
    monkeypatch.setattr(builtins, "open", spy_open)
    for cmd in (["show"], ["lint"], ["new"]):
        touched.clear()
        res = runner.invoke(app, ["constitution", *cmd, "../../etc/passwd"], env=ENV)
        assert res.exit_code == 2, res.output
        assert "persona name '../../etc/passwd' is not allowed" in res.output
        assert not [t for t in touched if "passwd" in t]


def test_new_writes_skeleton_and_refuses_overwrite(cdir: Path) -> None:
    res = runner.invoke(app, ["constitution", "new", "fresh"], env=ENV)
    assert res.exit_code == 0, res.output
    assert (cdir / "fresh.yaml").exists()
    res = runner.invoke(app, ["constitution", "new", "fresh"], env=ENV)
    assert res.exit_code == 2 and "already exists" in res.output
    res = runner.invoke(app, ["constitution", "lint", "fresh"], env=ENV)
    assert res.exit_code == 1 and "C001" in res.output  # a skeleton is not a finished persona


def test_import_json_and_text(cdir: Path, tmp_path: Path) -> None:
    from tests.unit.test_constitutions import _good_traits

    src = tmp_path / "ref.txt"
    src.write_text(json.dumps(_good_traits()))
    res = runner.invoke(app, ["constitution", "import", str(src), "--name", "ref"], env=ENV)
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output and "C012" in res.output  # lint hints are shown
    res = runner.invoke(app, ["constitution", "show", "ref"], env=ENV)
    assert res.exit_code == 0 and "Ahoy there" in res.output
    res = runner.invoke(app, ["constitution", "import", str(src), "--name", "ref"], env=ENV)
    assert res.exit_code == 2 and "--force" in res.output
    txt = tmp_path / "traits.txt"
    txt.write_text('I open with "Howdy".\nI close with "So long".\n')
    out = tmp_path / "out.yaml"
    res = runner.invoke(app, ["constitution", "import", str(txt), "--name", "plain", "-o", str(out)], env=ENV)
    assert res.exit_code == 0 and out.exists() and "C006" in res.output
    res = runner.invoke(app, ["constitution", "import", str(txt), "--name", "../x"], env=ENV)
    assert res.exit_code == 2 and "not allowed" in res.output
