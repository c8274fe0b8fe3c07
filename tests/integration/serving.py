"""A real `transformers serve` on loopback serving a local model, for the integration tests that talk to
an OpenAI-compatible server (started with the managed-server machinery the runs use, stopped after)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from character.backends.server import ManagedServer, free_port, transformers_serve_argv


@contextmanager
def transformers_serve(model: Path, log_path: Path, **env: str) -> Iterator[ManagedServer]:
    """Serve `model` offline on a free port (start takes ~5-20 s on 2 cores); `env` adds variables."""
    port = free_port()
    srv = ManagedServer(
        transformers_serve_argv(str(model), host="127.0.0.1", port=port),
        port=port,
        name="transformers serve",
        start_timeout_s=300,
        env={"HF_HUB_OFFLINE": "1", **env},
        log_path=log_path,
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
