"""GPU tests: collected everywhere, run only where CUDA is visible."""

from __future__ import annotations

import os

import pytest

VLLM_PYTHON = os.environ.get("CHARACTER_TEST_VLLM_PYTHON", "")
"""An interpreter with vLLM installed: vLLM pins its own torch and cannot share trl's environment."""


def vllm_marks() -> list[pytest.MarkDecorator]:
    """`pytestmark` of a test that drives a real managed `vllm serve`: skipped without CUDA or without
    CHARACTER_TEST_VLLM_PYTHON (and the whole module without torch)."""
    torch = pytest.importorskip("torch")
    return [
        pytest.mark.gpu,
        pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
        pytest.mark.skipif(
            not VLLM_PYTHON, reason="set CHARACTER_TEST_VLLM_PYTHON to an interpreter with vLLM"
        ),
    ]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "tests/gpu/" in str(item.fspath) or item.get_closest_marker("gpu"):
            item.add_marker(skip)
