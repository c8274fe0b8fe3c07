"""Shared fixtures.

- `embedded_model`: the real SmolLM2-135M, prepared once per machine under artifacts/models (the
  conversion is cached; later sessions reuse it in ~0.2 s).
- `tiny_model`: a random-init Llama (hidden 16, 2 layers) with the embedded tokenizer and chat
  template, built offline once per test session, for sub-second wiring tests.
- `finished_smoke_run`: one `character pipeline remorseful --scale smoke --smoke small` through the real
  CLI, built once per test session and shared by every test that reads a finished run (pipeline,
  eval, robustness, studio, examples). It is read-only: a test that changes it takes
  `copy_of_smoke_run` (hard links for large files, which every stage replaces rather than edits).
- Every test starts with no CHARACTER_* variables from the developer's shell.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("CHARACTER_NO_PROGRESS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")


@pytest.fixture(autouse=True)
def _clean_character_env(monkeypatch: pytest.MonkeyPatch) -> None:
    keep = {"CHARACTER_NO_PROGRESS", "CHARACTER_ARTIFACTS"}
    for var in list(os.environ):
        if var.startswith("CHARACTER_") and var not in keep:
            monkeypatch.delenv(var)


@pytest.fixture(scope="session")
def embedded_model() -> Path:
    from character.models import prepare_embedded

    return prepare_embedded()


@pytest.fixture(scope="session")
def tiny_model(embedded_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(embedded_model)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    out = tmp_path_factory.mktemp("tiny-model")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture
def artifacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedded_model: Path) -> Path:
    """An isolated artifacts dir whose models/ points at the shared embedded model."""
    root = tmp_path / "artifacts"
    (root / "models").mkdir(parents=True)
    (root / "models" / embedded_model.name).symlink_to(embedded_model)
    monkeypatch.setenv("CHARACTER_ARTIFACTS", str(root))
    return root


def cli_env(artifacts: Path, **extra: str) -> dict[str, str]:
    """The environment for a CLI subprocess: no CHARACTER_* from the shell, this test's artifacts."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARACTER_")}
    env.update(CHARACTER_ARTIFACTS=str(artifacts), CHARACTER_NO_PROGRESS="1", **extra)
    return env


def run_cli(*args: str, artifacts: Path, timeout: int = 2400, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m character.cli ARGS` in a subprocess, as a user would run it."""
    cmd = [sys.executable, "-m", "character.cli", *args]
    return subprocess.run(
        cmd, env=cli_env(artifacts, **env), cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def finished_smoke_run(embedded_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(run dir, CLI output) of a finished smoke-small pipeline. Read-only: see `copy_of_smoke_run`."""
    artifacts = tmp_path_factory.mktemp("smoke-pipeline") / "artifacts"
    (artifacts / "models").mkdir(parents=True)
    (artifacts / "models" / embedded_model.name).symlink_to(embedded_model)
    res = run_cli("pipeline", "remorseful", "--scale", "smoke", "--smoke", "small", artifacts=artifacts)
    assert res.returncode == 0, res.stderr[-3000:]
    (run,) = (artifacts / "runs").iterdir()
    return run, res.stdout + res.stderr


def _link_or_copy(src: str, dst: str) -> None:
    # Weights are written once through atomic_dir and never edited in place, so a hard link is safe;
    # small files (JSONL appended by --resume, registry) are real copies.
    if os.path.getsize(src) > 1_000_000:
        os.link(src, dst)
    else:
        shutil.copy2(src, dst)


@pytest.fixture
def copy_of_smoke_run(finished_smoke_run: tuple[Path, str], tmp_path: Path) -> Path:
    """A private copy of the finished smoke run's artifacts dir; returns the copied run dir."""
    run, _ = finished_smoke_run
    src_artifacts = run.parent.parent
    dst_artifacts = tmp_path / "artifacts"
    shutil.copytree(src_artifacts, dst_artifacts, symlinks=True, copy_function=_link_or_copy)
    return dst_artifacts / "runs" / run.name
