"""The real managed-vLLM path (needs CUDA and a separate interpreter with vLLM).

Point CHARACTER_TEST_VLLM_PYTHON at that interpreter (e.g. /opt/vllm/bin/python); the test is skipped
without CUDA or without it. It starts `vllm serve` on the embedded model with one LoRA adapter
(rank 8 from the adapter, lora.r 12 rounded up to 16), checks /v1/models lists exactly the base and
the adapter, generates through both, and stops the server with the port verified free.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.gpu.conftest import VLLM_PYTHON, vllm_marks

pytestmark = vllm_marks()


def test_managed_vllm_serves_base_and_adapter(embedded_model: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from character.backends import GenerationRequest, SamplingParams
    from character.backends.server import free_port, port_is_free
    from character.backends.vllm import ManagedVLLM
    from character.config import RunConfig

    adapter = tmp_path / "dpo"
    base = AutoModelForCausalLM.from_pretrained(embedded_model)
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, lora).save_pretrained(adapter)

    port = free_port()
    cfg = RunConfig()
    cfg.backend.kind = "vllm"
    cfg.backend.vllm_python = VLLM_PYTHON
    cfg.backend.port = port
    cfg.backend.vllm_extra_args = ["--gpu-memory-utilization", "0.3", "--max-model-len", "2048"]
    cfg.lora.r = 12
    backend = ManagedVLLM.from_config(cfg, "embedded", adapters={"dpo": str(adapter)})
    try:
        params = SamplingParams(temperature=0, max_new_tokens=16)
        reqs = [
            GenerationRequest([{"role": "user", "content": "What is the capital of France?"}], params),
            GenerationRequest(
                [{"role": "user", "content": "What is the capital of France?"}], params, adapter="dpo"
            ),
            GenerationRequest(
                [{"role": "user", "content": "Say something."}], params, prefill="I'm so sorry, "
            ),
        ]
        out = backend.generate(reqs, progress=False)
        argv = " ".join(backend.server.cmd)  # the command line is built at start, for the port picked then
        assert "--max-lora-rank 16" in argv and f"--lora-modules dpo={adapter}" in argv
        assert f"--port {port}" in argv
        assert backend.model_check is not None and backend.model_check.method == "list"
        assert backend.model_check.served == ["dpo", "embedded"]
        assert "Paris" in out[0][0].text
        assert all(o[0].completion_tokens > 0 and o[0].prompt_tokens > 0 for o in out)
        assert out[0][0].text != out[1][0].text  # a random LoRA changes greedy output
        assert not out[2][0].text.startswith("I'm so sorry")  # continuation only, prefill not repeated
    finally:
        backend.close()
    assert port_is_free("127.0.0.1", port)
    assert subprocess.run(["pgrep", "-f", f"--port {port}"], capture_output=True).returncode != 0
