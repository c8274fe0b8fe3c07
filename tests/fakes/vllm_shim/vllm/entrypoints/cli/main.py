"""`python -m vllm.entrypoints.cli.main serve ...` inside the fake vLLM environment: runs tests/fakes/fake_vllm.py."""

import runpy
from pathlib import Path

runpy.run_path(str(Path(__file__).resolve().parents[4] / "fake_vllm.py"), run_name="__main__")
