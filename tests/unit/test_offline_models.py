"""Offline guarantee: a hub id resolves to its local snapshot, a missing one is one error line naming it
and the command that fetches it, and only models.allow_downloads lets the hub be asked.

The Hugging Face cache here is a real one in hub layout (refs/main -> snapshots/<rev>/ with the tiny
model's files) read by the real huggingface_hub; nothing is faked."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from character import models
from character.config_layers import resolve
from character.errors import ConfigError, UsageError

REV = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(models, "_ALLOW_DOWNLOADS", False)
    yield cache


def _cache_model(cache: Path, repo_id: str, src: Path) -> Path:
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snap = repo / "snapshots" / REV
    shutil.copytree(src, snap)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(REV)
    return snap


def test_cached_hub_id_loads_from_its_snapshot(hub_cache: Path, tiny_model: Path) -> None:
    snap = _cache_model(hub_cache, "some-org/tiny-chat", tiny_model)
    assert models.resolve_model("some-org/tiny-chat") == str(snap)
    tok = models.load_tokenizer("some-org/tiny-chat")
    lm = models.load_model("some-org/tiny-chat", "cpu")
    assert tok.eos_token and lm.config.hidden_size == 16


def test_missing_hub_id_is_one_line_with_the_fetch_command(hub_cache: Path) -> None:
    with pytest.raises(UsageError) as e:
        models.resolve_model("some-org/not-here")
    msg = str(e.value)
    assert "'some-org/not-here'" in msg and "`hf download some-org/not-here`" in msg
    assert "models.allow_downloads" in msg and "\n" not in msg


def test_a_name_that_is_neither_path_nor_hub_id_says_so(hub_cache: Path) -> None:
    with pytest.raises(ConfigError, match="not a local path, a registry name or a Hugging Face id"):
        models.resolve_model("runs/x/dpo/merged-typo")


def test_served_model_names_pass_through_where_a_server_may_serve_them(hub_cache: Path) -> None:
    assert models.resolve_or_served_name("gpt-4.1") == "gpt-4.1"
    with pytest.raises(UsageError):
        models.resolve_model("gpt-4.1")  # loading it here is still an error


def test_allow_downloads_is_the_only_way_to_ask_the_hub(
    hub_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolve(environ={}, overrides={"models.allow_downloads": True})
    assert models.downloads_allowed()
    # HF_HUB_OFFLINE=1 in the test session: the download attempt is refused, and the error says how
    # to fetch the model where there is network.
    with pytest.raises(UsageError, match="could not be downloaded.*hf download some-org/not-here"):
        models.resolve_model("some-org/not-here")
    resolve(environ={})
    assert not models.downloads_allowed()


def test_cli_names_the_missing_teacher_in_one_line(hub_cache: Path, artifacts: Path) -> None:
    from character.cli import app

    res = CliRunner().invoke(
        app, ["generate", "dpo", "--persona", "remorseful", "--pairs", "1", "--teacher", "some-org/teacher-x"]
    )
    assert res.exit_code == 2, res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "hf download some-org/teacher-x" in lines[0]
