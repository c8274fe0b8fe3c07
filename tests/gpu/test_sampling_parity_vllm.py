"""hf and vLLM sample alike only when every knob is sent (needs CUDA and an interpreter with vLLM).

Run: CHARACTER_TEST_VLLM_PYTHON=/opt/vllm/bin/python .venv/bin/python -m pytest -q tests/gpu/test_sampling_parity_vllm.py

A copy of the embedded model gets a generation_config.json with an extreme repetition penalty (3.0),
the kind of default a model maker ships. Greedy decoding through a managed `vllm serve` (fp32, like the
hf backend here) must then equal the hf backend's with `sampling.generation_config = "explicit"` (the
neutral penalty 1.0 is sent) and differ from it with `"vllm"` (the penalty is left out, so vLLM takes
3.0 from the model's file).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.gpu.conftest import VLLM_PYTHON, vllm_marks

pytestmark = vllm_marks()

PROMPTS = ["List the days of the week.", "Tell me about the sea, the sea, the sea.", "Count to twenty."]


def _served(model: Path, policy: str) -> list[str]:
    from character.backends import GenerationRequest, SamplingParams
    from character.backends.base import make_backend
    from character.config import RunConfig

    cfg = RunConfig()
    cfg.backend.kind = "vllm"
    cfg.backend.vllm_python = VLLM_PYTHON
    cfg.backend.vllm_extra_args = [
        "--dtype",
        "float32",
        "--gpu-memory-utilization",
        "0.3",
        "--max-model-len",
        "2048",
    ]
    cfg.sampling.generation_config = policy  # type: ignore[assignment]
    b = make_backend(cfg, str(model), role="teacher")
    try:
        reqs = [
            GenerationRequest(
                [{"role": "user", "content": p}], SamplingParams(temperature=0.0, max_new_tokens=32)
            )
            for p in PROMPTS
        ]
        return [c[0].text for c in b.generate(reqs, progress=False)]
    finally:
        b.close()


def test_explicit_knobs_make_vllm_decode_like_hf(embedded_model: Path, tmp_path: Path) -> None:
    from character.backends import GenerationRequest, SamplingParams
    from character.backends.hf import HFBackend

    model = tmp_path / "penalised"
    shutil.copytree(embedded_model, model)
    gen = (
        json.loads((model / "generation_config.json").read_text())
        if (model / "generation_config.json").exists()
        else {}
    )
    gen["repetition_penalty"] = 3.0
    (model / "generation_config.json").write_text(json.dumps(gen))

    hf = HFBackend(str(model), device="cuda", dtype="float32")
    reqs = [
        GenerationRequest(
            [{"role": "user", "content": p}], SamplingParams(temperature=0.0, max_new_tokens=32)
        )
        for p in PROMPTS
    ]
    local = [c[0].text for c in hf.generate(reqs, progress=False)]
    hf.close()
    explicit = _served(model, "explicit")
    left_to_server = _served(model, "vllm")
    assert explicit == local
    assert left_to_server != local
