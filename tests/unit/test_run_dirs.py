"""How the stand-alone stage commands find their input: --dataset, else --run, else the newest run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from character.commands.run_dirs import find_dataset
from character.config import RunConfig
from character.errors import UsageError

NEEDS = "distill/pairs.jsonl"


def _run(root: Path, name: str, *, with_file: bool, mtime: float) -> Path:
    run = root / "runs" / name
    (run / "distill").mkdir(parents=True)
    if with_file:
        (run / NEEDS).write_text("{}\n")
    os.utime(run, (mtime, mtime))
    return run


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CHARACTER_ARTIFACTS", str(tmp_path))
    return tmp_path


def test_newest_run_that_has_the_file_wins(root: Path) -> None:
    cfg = RunConfig(persona="pirate")
    _run(root, "pirate_20260101-000000", with_file=True, mtime=1_000)
    newer = _run(root, "pirate_20260102-000000", with_file=True, mtime=2_000)
    _run(root, "pirate_20260103-000000", with_file=False, mtime=3_000)  # newest, but nothing to train on
    _run(root, "stoic_20260104-000000", with_file=True, mtime=4_000)  # another persona
    assert find_dataset(None, None, cfg, NEEDS, "character generate dpo") == newer / NEEDS


def test_run_option_is_searched_and_must_hold_the_file(root: Path) -> None:
    cfg = RunConfig(persona="pirate")
    _run(root, "pirate_20260102-000000", with_file=True, mtime=2_000)
    empty = _run(root, "pirate_20260101-000000", with_file=False, mtime=1_000)
    with pytest.raises(UsageError, match=r"distill/pairs\.jsonl does not exist.*character generate dpo"):
        find_dataset(None, empty, cfg, NEEDS, "character generate dpo")


def test_no_run_at_all_names_the_command_that_makes_one(root: Path) -> None:
    with pytest.raises(
        UsageError, match=r"no run of 'pirate' has distill/pairs\.jsonl.*`character generate dpo`"
    ):
        find_dataset(None, None, RunConfig(persona="pirate"), NEEDS, "character generate dpo")


def test_an_explicit_dataset_must_exist(root: Path) -> None:
    given = root / "mine.jsonl"
    with pytest.raises(UsageError, match="mine.jsonl does not exist"):
        find_dataset(given, None, RunConfig(persona="pirate"), NEEDS, "character generate dpo")
    given.write_text("{}\n")
    assert find_dataset(given, None, RunConfig(persona="pirate"), NEEDS, "x") == given
