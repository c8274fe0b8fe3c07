"""`character doctor`: what a bug report needs, read from this installation, with no secret in it."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

from typer.testing import CliRunner

from character.cli import app


def test_doctor_reports_this_installation_and_hides_secrets(artifacts: Path) -> None:
    env = {
        "HF_TOKEN": "hf_SECRETVALUE",
        "CHARACTER_BACKEND__VLLM_PYTHON": "/no/such/python",  # an env without vLLM must not break it
        "COLUMNS": "160",
    }
    r = CliRunner().invoke(app, ["doctor", "--json"], env=env)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["packages"]["torch"] == importlib.metadata.version("torch")
    assert doc["packages"]["trl"] == importlib.metadata.version("trl")
    assert set(doc["packages"]) >= {"transformers", "peft", "accelerate", "vllm"}
    assert doc["vllm_python"] == {"interpreter": "/no/such/python", "vllm": None}
    assert doc["paths"]["artifacts"] == str(artifacts) and doc["paths"]["registry"].startswith(str(artifacts))
    assert doc["embedded_model"]["prepared"] is True and doc["embedded_model"]["next_step"] is None
    assert isinstance(doc["devices"]["cuda_available"], bool) and doc["devices"]["cpu_count"] >= 1
    assert doc["registry"] == {"checkpoints": 0, "production": {}}
    assert doc["environment"]["HF_TOKEN"] == "(set, hidden)" and "SECRETVALUE" not in r.output
    r = CliRunner().invoke(app, ["doctor"], env=env)
    assert r.exit_code == 0 and "character doctor" in r.output and "SECRETVALUE" not in r.output
    assert "embedded model" in r.output and "ready" in r.output and not r.output.lstrip().startswith("{")


def test_doctor_says_how_to_prepare_a_missing_embedded_model(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("CHARACTER_ARTIFACTS", str(tmp_path / "empty-artifacts"))
    doc = json.loads(CliRunner().invoke(app, ["doctor", "--json"]).output)
    assert doc["embedded_model"]["prepared"] is False
    assert doc["embedded_model"]["next_step"] == "character models prepare"
