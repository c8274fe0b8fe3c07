"""Managed-server plumbing without a model: port checks, a process that dies or never gets healthy,
the /v1/models identity check (exact list, mismatch, and the echo fallback), and the `vllm serve`
command line (LoRA flags, rank rounding, interpreter checks)."""

from __future__ import annotations

import json
import logging
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from character.backends.server import ManagedServer, free_port, port_is_free, verify_models
from character.backends.vllm import ManagedVLLM, check_vllm_python, lora_rank_for_vllm, vllm_serve_argv
from character.config import RunConfig
from character.errors import BackendError, ConfigError
from tests.fakes.json_http import JsonHandler, LocalHttpServer


class ModelsServer(LocalHttpServer):
    """Serves /v1/models from a list (or HTTP 500 when None) and echoes `echo_as` in completions."""

    def __init__(self, models: list[str] | None, echo_as: dict[str, str] | None = None):
        outer = self
        self.models, self.echo_as = models, echo_as or {}

        class H(JsonHandler):
            def do_GET(self) -> None:
                if outer.models is None:
                    return self.send_json(500, {"detail": "Internal Server Error"})
                self.send_json(200, {"object": "list", "data": [{"id": m} for m in outer.models]})

            def do_POST(self) -> None:
                body = self.read_json()
                name = outer.echo_as.get(body["model"], body["model"] + "@main")
                self.send_json(
                    200,
                    {"model": name, "choices": [{"message": {"content": "x"}, "finish_reason": "length"}]},
                )

        super().__init__(H)


@pytest.fixture
def models_server(request: pytest.FixtureRequest) -> Iterator[ModelsServer]:
    s = ModelsServer(*request.param)
    yield s
    s.close()


@pytest.mark.parametrize("models_server", [(["base", "dpo"],)], indirect=True)
def test_models_list_must_match_exactly(models_server: ModelsServer) -> None:
    check = verify_models(models_server.url, ["base", "dpo"])
    assert check.method == "list" and check.served == ["base", "dpo"]
    with pytest.raises(BackendError, match=r"missing \['sft'\], unexpected \['dpo'\]"):
        verify_models(models_server.url, ["base", "sft"])
    with pytest.raises(BackendError, match=r"unexpected \['dpo'\]"):
        verify_models(models_server.url, ["base"])


@pytest.mark.parametrize("models_server", [(None, {"stale": "other-model"})], indirect=True)
def test_unlistable_server_is_checked_by_echo(
    models_server: ModelsServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        check = verify_models(models_server.url, ["/models/m"])
    assert check.method == "echo" and check.served == ["/models/m"] and "HTTP 500" in check.note
    assert "cannot list models" in caplog.text
    with pytest.raises(BackendError, match="answered a request for 'stale' as 'other-model'"):
        verify_models(models_server.url, ["stale"])


def test_port_in_use_is_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert not port_is_free("127.0.0.1", port)
        with pytest.raises(BackendError, match="already in use"):
            ManagedServer([sys.executable, "-c", "pass"], port=port).start()
    assert port_is_free("127.0.0.1", port)


def test_process_that_dies_reports_its_log(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import sys; print('model weights not found'); sys.exit(3)"]
    srv = ManagedServer(argv, port=free_port(), name="doomed", log_path=tmp_path / "s.log")
    with pytest.raises(BackendError, match=r"(?s)doomed exited with code 3.*model weights not found"):
        srv.start()
    assert srv.proc is None


def test_never_healthy_times_out_and_is_stopped(tmp_path: Path) -> None:
    port = free_port()
    # Listens but answers nothing useful (no /health): must time out, be killed, and free the port.
    code = (
        "import http.server,sys; http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), "
        "http.server.BaseHTTPRequestHandler).serve_forever()"
    )
    srv = ManagedServer([sys.executable, "-c", code, str(port)], port=port, start_timeout_s=2, name="mute")
    with pytest.raises(BackendError, match="not healthy"):
        srv.start()
    assert srv.proc is None and port_is_free("127.0.0.1", port)


@pytest.mark.parametrize(
    ("rank", "want"), [(1, 1), (2, 8), (16, 16), (17, 32), (64, 64), (300, 320), (512, 512)]
)
def test_lora_rank_rounds_up_to_a_vllm_rank(rank: int, want: int) -> None:
    assert lora_rank_for_vllm(rank) == want


def test_lora_rank_above_512_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="lora.r = 600"):
        lora_rank_for_vllm(600)


def test_vllm_argv_has_lora_modules_and_rank(tmp_path: Path) -> None:
    dpo = tmp_path / "dpo"
    dpo.mkdir()
    (dpo / "adapter_config.json").write_text(json.dumps({"r": 48}))
    argv = vllm_serve_argv(
        "/opt/vllm/bin/python",
        "/models/base",
        served_name="base",
        host="127.0.0.1",
        port=8011,
        adapters={"dpo": str(dpo), "sft": "/a/sft"},
        lora_rank=16,
        extra_args=["--tensor-parallel-size", "2"],
    )
    joined = " ".join(argv)
    assert argv[:5] == ["/opt/vllm/bin/python", "-m", "vllm.entrypoints.cli.main", "serve", "/models/base"]
    assert "--served-model-name base" in joined and "--port 8011" in joined
    assert "--enable-lora --max-lora-rank 64 --max-loras 2" in joined  # adapter r=48 > config r=16
    assert f"--lora-modules dpo={dpo} sft=/a/sft" in joined
    assert argv[-2:] == ["--tensor-parallel-size", "2"]
    assert "--enable-lora" not in vllm_serve_argv("py", "/m", served_name="m", host="h", port=1)


def test_vllm_python_must_exist_and_have_vllm() -> None:
    with pytest.raises(ConfigError, match="backend.vllm_python = '/no/such/python' is not an interpreter"):
        check_vllm_python("/no/such/python")
    # This environment deliberately has no vLLM (it cannot share trl's pins).
    with pytest.raises(ConfigError, match="has no vllm installed"):
        check_vllm_python(sys.executable)
    cfg = RunConfig()
    cfg.backend.kind = "vllm"
    cfg.backend.vllm_python = sys.executable
    with pytest.raises(ConfigError, match="backend.vllm_python"):
        ManagedVLLM.from_config(cfg, "embedded")
