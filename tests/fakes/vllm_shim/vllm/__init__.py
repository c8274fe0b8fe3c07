"""Not vLLM: a shim that makes `tests/fakes/fake_vllm.py` answer to vLLM's entry point (tests only)."""
