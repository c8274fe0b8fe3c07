"""The `vllm` backend: a managed `vllm serve` process, reached through the `openai` backend.

vLLM pins its own torch/transformers and cannot share the training environment, so it runs from
another interpreter (`backend.vllm_python`, e.g. `/opt/vllm-venv/bin/python`). The server starts on
first use with every LoRA adapter as a module (`--enable-lora --lora-modules name=path`,
`--max-lora-rank` rounded up to a rank vLLM accepts and at least the configured LoRA rank), is checked
to serve exactly the base model and those adapters before any request, and is stopped (port verified
free) by `close()` at the end of the stage.

One server per role (`backends/roles.py`): it listens on the host of the role's `base_url` and on the
role's `port` (unset: a free port picked at start, so two roles, `eval compare` and parallel ablation
runs never collide), with `CUDA_VISIBLE_DEVICES` set to the role's `gpus`. Before it starts, every live
server sharing its GPUs or port is stopped (`lifecycle.py`): teacher pass, stop, student pass. Every
start is recorded in the run's `servers.json`, so `--resume` reaps a killed run's servers.

The API key (if `backend.api_key_env` is set in the environment) reaches vLLM as `VLLM_API_KEY` in
its environment, never on the command line, where `ps` and logs would show it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from character.backends.base import Completion, GenerationRequest
from character.backends.openai import OpenAIBackend
from character.backends.roles import backend_for, config_for
from character.backends.server import ManagedServer, ModelCheck
from character.errors import ConfigError
from character.models import resolve_model

if TYPE_CHECKING:
    from character.config import RunConfig

log = logging.getLogger(__name__)

VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def lora_rank_for_vllm(rank: int) -> int:
    """The smallest rank vLLM accepts for `--max-lora-rank` that holds `rank`."""
    for r in VLLM_LORA_RANKS:
        if r >= rank:
            return r
    raise ConfigError(f"lora.r = {rank} is above vLLM's largest --max-lora-rank (512); use a rank <= 512")


def adapter_rank(path: str) -> int | None:
    cfg = Path(path) / "adapter_config.json"
    if not cfg.exists():
        return None
    return int(json.loads(cfg.read_text()).get("r") or 0) or None


def vllm_serve_argv(
    python: str,
    model_path: str,
    *,
    served_name: str,
    host: str,
    port: int,
    adapters: dict[str, str] | None = None,
    lora_rank: int = 16,
    extra_args: list[str] | None = None,
) -> list[str]:
    argv = [
        python,
        "-m",
        "vllm.entrypoints.cli.main",
        "serve",
        model_path,
        "--host",
        host,
        "--port",
        str(port),
        "--served-model-name",
        served_name,
    ]
    if adapters:
        ranks = [lora_rank] + [r for r in (adapter_rank(p) for p in adapters.values()) if r]
        argv += [
            "--enable-lora",
            "--max-lora-rank",
            str(lora_rank_for_vllm(max(ranks))),
            "--max-loras",
            str(len(adapters)),
            "--lora-modules",
            *(f"{name}={path}" for name, path in adapters.items()),
        ]
    return argv + list(extra_args or [])


def check_vllm_python(python: str) -> str:
    exe = shutil.which(python) or (python if Path(python).exists() else None)
    if exe is None:
        raise ConfigError(
            f"backend.vllm_python = {python!r} is not an interpreter on this machine; point it at the python "
            "of a separate environment with vLLM installed (vLLM cannot share trl's environment)"
        )
    probe = "import importlib.util,sys; sys.exit(importlib.util.find_spec('vllm') is None)"
    if subprocess.run([exe, "-c", probe], capture_output=True, timeout=60).returncode != 0:
        raise ConfigError(
            f"backend.vllm_python = {python!r} has no vllm installed; create a separate venv with vLLM "
            "(`python -m venv /opt/vllm && /opt/vllm/bin/pip install vllm`) and set backend.vllm_python to its python"
        )
    return exe


class ManagedVLLM:
    """A `vllm serve` process started on first use and stopped by `close()`, behind the openai backend."""

    name = "vllm"

    def __init__(self, server: ManagedServer, client: OpenAIBackend, expected: list[str]):
        self.server = server
        self.client = client
        self.model = client.model
        self.expected = expected
        self.model_check: ModelCheck | None = None
        self.connect: Callable[[str], OpenAIBackend] | None = None

    @classmethod
    def from_config(
        cls,
        cfg: RunConfig,
        model: str,
        *,
        adapters: dict[str, str] | None = None,
        role: str | None = None,
    ) -> ManagedVLLM:
        b = backend_for(cfg, role)
        host = urlparse(b.base_url).hostname or "127.0.0.1"
        python = check_vllm_python(b.vllm_python)
        adapters = {name: resolve_model(path) for name, path in (adapters or {}).items()}
        served = b.model or model
        path = resolve_model(model)

        def argv(port: int) -> list[str]:
            return vllm_serve_argv(
                python,
                path,
                served_name=served,
                host=host,
                port=port,
                adapters=adapters,
                lora_rank=cfg.lora.r,
                extra_args=b.vllm_extra_args,
            )

        env = {}
        key = os.environ.get(b.api_key_env)
        if key:
            env["VLLM_API_KEY"] = key
        server = ManagedServer(
            argv,
            host=host,
            port=b.port or 0,
            name="vllm serve",
            start_timeout_s=b.server_start_timeout_s,
            env=env,
            role=role or "",
            gpus=list(b.gpus),
        )
        role_cfg = config_for(cfg, role)

        def connect(base_url: str) -> OpenAIBackend:
            client = OpenAIBackend.from_config(role_cfg, served, adapters=list(adapters), base_url=base_url)
            client.provider, client.caps = "vllm", _vllm_caps()
            client.verify_model = False  # the managed server checks the exact list itself, after start
            return client

        vllm = cls(server, connect(server.base_url), [served, *adapters])
        vllm.connect = connect
        return vllm

    def start(self) -> None:
        if self.server.proc is None:
            self.server.start()
            url = self.server.base_url.rstrip("/")
            if self.connect is not None and self.client.base_url != url:
                # The port is picked at every start: a client for the new address, same token meter.
                tokens = self.client.tokens
                self.client.close()
                self.client = self.connect(url)
                self.client.tokens = tokens
            try:
                self.model_check = self.server.verify_models(
                    self.expected, request_json=self.client.request_json
                )
            except BaseException:
                self.server.stop()
                raise

    def describe(self) -> dict[str, Any]:
        d = self.client.describe()
        d.update(backend=self.name, model_check=self.model_check.as_dict() if self.model_check else None)
        return d

    def generate(self, requests: list[GenerationRequest], *, progress: bool = True) -> list[list[Completion]]:
        self.start()
        return self.client.generate(requests, progress=progress)

    @property
    def tokens(self) -> dict[str, int]:
        return self.client.tokens

    def close(self) -> None:
        self.server.stop()

    def __enter__(self) -> ManagedVLLM:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _vllm_caps() -> Any:
    from character.backends.capabilities import capabilities_for

    return capabilities_for("vllm")
