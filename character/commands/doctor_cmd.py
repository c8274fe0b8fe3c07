"""`character doctor`: what this installation is, for a bug report (like `trl env`).

Versions of the packages a run depends on (absent ones say so), the devices torch sees, the embedded
model's state, where artifacts, runs, the registry and constitutions live, and which CHARACTER_*
settings the environment sets. Nothing is loaded onto a device and nothing is downloaded; a secret
never appears (values of variables whose name holds KEY, TOKEN, SECRET or PASSWORD are hidden).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from character.commands.output import JsonOpt

PACKAGES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "vllm", "deepspeed",
            "bitsandbytes", "lm-eval", "typer", "pydantic", "openai", "gguf")  # fmt: skip
SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD")


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _vllm_elsewhere(python: str) -> str | None:
    """vLLM's version in the separate environment `backend.vllm_python` names (it pins older trl)."""
    try:
        r = subprocess.run(
            [python, "-c", "import importlib.metadata as m; print(m.version('vllm'))"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() or None if r.returncode == 0 else None


def _devices() -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {
        "cuda_available": torch.cuda.is_available(),
        "cuda_version": torch.version.cuda,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "gpus": [],
        "mps_available": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "bf16_supported": torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
    }
    for i in range(torch.cuda.device_count() if out["cuda_available"] else 0):
        p = torch.cuda.get_device_properties(i)
        out["gpus"].append({"index": i, "name": p.name, "memory_gb": round(p.total_memory / 2**30, 1)})
    return out


def _environment() -> dict[str, str]:
    keep = [k for k in os.environ if k.startswith(("CHARACTER_", "HF_", "TRANSFORMERS_", "WANDB_"))]
    return {
        k: "(set, hidden)" if any(w in k.upper() for w in SECRET_WORDS) else os.environ[k]
        for k in sorted(keep)
    }


def report(cfg: Any) -> dict[str, Any]:
    """Everything `doctor` prints, as data."""
    from character import __version__, paths, registry
    from character.manifest import git_sha
    from character.models import embedded_dir, find_gguf, is_complete

    emb = embedded_dir()
    try:
        reg = registry.load()
        reg_state = {
            "checkpoints": len(reg.checkpoints),
            "production": dict(registry.personas_in_production()),
        }
    except Exception as e:  # a broken registry is exactly what a bug report needs to show
        reg_state = {"error": " ".join(str(e).split())}
    versions = {name: _version(name) for name in PACKAGES}
    return {
        "character": __version__,
        "git_sha": git_sha(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "executable": sys.executable,
        "packages": versions,
        "vllm_python": {
            "interpreter": cfg.backend.vllm_python,
            "vllm": _vllm_elsewhere(cfg.backend.vllm_python),
        },
        "devices": _devices(),
        "embedded_model": {
            "path": str(emb),
            "prepared": is_complete(emb),
            "gguf_package": str(find_gguf()) if find_gguf() else None,
            "next_step": None if is_complete(emb) else "character models prepare",
        },
        "paths": {
            "artifacts": str(paths.artifacts_dir()),
            "runs": str(paths.runs_dir()),
            "models": str(paths.models_dir()),
            "registry": str(registry.registry_path()),
            "constitutions": str(paths.constitutions_dir()),
            "presets": str(paths.presets_dir()),
        },
        "registry": reg_state,
        "environment": _environment(),
    }


def doctor(
    ctx: typer.Context,
    json_out: JsonOpt = False,
    config: Annotated[Path | None, typer.Option("--config", help="A TOML or YAML config file.")] = None,
) -> None:
    """What this installation is, for a bug report: package versions, devices, the embedded model,
    paths, the registry and the CHARACTER_* environment. Paste its output into an issue.

    Runs offline in a few seconds and loads no model. vLLM is looked up both here and in the
    separate environment `backend.vllm_python` names (vLLM pins older trl/transformers).

    Examples:

      character doctor
      character doctor --json > doctor.json
    """
    from character.commands import output
    from character.commands.eval_common import resolve_cfg

    doc = report(resolve_cfg(ctx, config=config))
    if json_out:
        output.print_json(doc)
        return
    d, e = doc["devices"], doc["embedded_model"]
    gpus = ", ".join(f"{g['index']}: {g['name']} ({g['memory_gb']} GB)" for g in d["gpus"]) or "none"
    head = [
        ("character", f"{doc['character']} (git {(doc['git_sha'] or 'unknown')[:12]})"),
        ("python", f"{doc['python']} on {doc['platform']}"),
        ("GPUs", gpus),
        ("CUDA", f"{d['cuda_available']} (torch built for CUDA {d['cuda_version'] or 'none'})"),
        ("CPU", f"{d['cpu_count']} cores, torch uses {d['torch_threads']} threads"),
        (
            "embedded model",
            ("ready: " if e["prepared"] else "NOT prepared (run `character models prepare`): ") + e["path"],
        ),  # fmt: skip
        (
            "vLLM in backend.vllm_python",
            f"{doc['vllm_python']['vllm'] or 'absent'} ({doc['vllm_python']['interpreter']})",
        ),
    ]
    output.show(
        [
            output.kv_table("character doctor", head),
            output.kv_table("packages", {k: v or "absent" for k, v in doc["packages"].items()}),
            output.kv_table("paths", doc["paths"]),
            output.kv_table(
                "registry",
                {
                    k: (", ".join(f"{p}: {n}" for p, n in v.items()) or "none") if isinstance(v, dict) else v
                    for k, v in doc["registry"].items()
                },
            ),
            output.kv_table("environment", doc["environment"] or {"(none)": ""}),
            output.footer(output_option=False),
        ]
    )


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
