"""Exact LoRA merging: W = W_base + Σ wᵢ·ΔWᵢ with ΔWᵢ = sᵢ·Bᵢ·Aᵢ, sᵢ = αᵢ/rᵢ (α/√r with rsLoRA).

The paper's release step used PEFT's `add_weighted_adapter(..., combination_type="linear")`, which mixes
the A and B factors separately (each scaled by √w), so the product is not Σ wᵢ·ΔWᵢ once the adapters
differ (cross terms Bᵢ·Aⱼ appear); the prior orchestrator normalised 1.0/0.25 to 0.8/0.2 and scaled
both factors (0.64/0.04 effective). Here each delta is computed on its own, in float64, and added to
the base weight, so the result is the stated linear combination up to the final rounding to the
model's dtype.

`combined_adapter` writes the same sum as one LoRA: stacking the A factors and the (weighted, scaled)
B factors, [w₁s₁B₁ | w₂s₂B₂]·[A₁; A₂] = Σ wᵢsᵢBᵢAᵢ exactly, at rank r₁+r₂ with α = r (scale 1).

Only plain LoRA on linear layers is supported (no DoRA, no trained biases, no `modules_to_save`,
no embedding adapters): anything else is refused by name rather than merged wrongly.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from character.errors import ConfigError
from character.fingerprint import file_sha256

log = logging.getLogger(__name__)

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<which>[AB])(?:\.[^.]+)?\.weight$")


@dataclass
class LoraFactors:
    a: Any  # (r, in) tensor
    b: Any  # (out, r) tensor
    scale: float  # α/r (or α/√r)


@dataclass
class LoraAdapter:
    path: Path
    config: dict[str, Any]
    modules: dict[str, LoraFactors]  # module name in the base model (e.g. model.layers.0.self_attn.q_proj)
    sha256: str

    @property
    def base(self) -> str:
        return str(self.config.get("base_model_name_or_path") or "")

    def delta(self, module: str) -> Any:
        """ΔW = s·B·A in float64, shaped like the base weight."""
        f = self.modules[module]
        d = f.scale * (f.b.double() @ f.a.double())
        return d.T if self.config.get("fan_in_fan_out") else d


def _alpha_for(config: dict[str, Any], module: str) -> float:
    pattern = config.get("alpha_pattern") or {}
    if pattern:
        from peft.utils.other import get_pattern_key

        key = get_pattern_key(list(pattern), module)
        if key in pattern:
            return float(pattern[key])
    return float(config["lora_alpha"])


def load_adapter(path: Path) -> LoraAdapter:
    """Read a PEFT LoRA adapter directory; refuse what cannot be merged exactly."""
    from safetensors.torch import load_file

    path = Path(path)
    cfg_path, w_path = path / ADAPTER_CONFIG, path / ADAPTER_WEIGHTS
    if not cfg_path.exists() or not w_path.exists():
        raise ConfigError(
            f"{path} is not a LoRA adapter directory (needs {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS}); "
            "pass the adapter/ folder a train stage wrote"
        )
    config = json.loads(cfg_path.read_text())
    if config.get("peft_type", "LORA") != "LORA":
        raise ConfigError(
            f"{path}: peft_type {config.get('peft_type')!r} is not LORA; only LoRA merges exactly"
        )
    if config.get("use_dora"):
        raise ConfigError(
            f"{path}: DoRA adapters (use_dora=true) are not a plain B·A delta; retrain without DoRA"
        )
    if config.get("bias", "none") != "none":
        raise ConfigError(f"{path}: bias={config['bias']!r} trains biases too; only bias='none' is supported")
    tensors = load_file(str(w_path))
    parts: dict[str, dict[str, Any]] = {}
    for key, t in tensors.items():
        m = _KEY.match(key)
        if m is None:
            raise ConfigError(
                f"{path}: tensor {key!r} is not a LoRA A/B factor (modules_to_save or embedding adapters?); "
                "only LoRA on linear layers can be merged exactly"
            )
        parts.setdefault(m["module"], {})[m["which"]] = t
    modules: dict[str, LoraFactors] = {}
    for module, ab in parts.items():
        if set(ab) != {"A", "B"}:
            raise ConfigError(
                f"{path}: module {module} has only lora_{''.join(ab)}; the adapter file is damaged"
            )
        r = ab["A"].shape[0]
        if ab["B"].shape[1] != r:
            raise ConfigError(f"{path}: module {module} has A rank {r} but B rank {ab['B'].shape[1]}")
        alpha = _alpha_for(config, module)
        scale = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
        modules[module] = LoraFactors(a=ab["A"], b=ab["B"], scale=scale)
    if not modules:
        raise ConfigError(f"{path} holds no LoRA factors")
    return LoraAdapter(path=path, config=config, modules=modules, sha256=file_sha256(w_path))


def merge_into_model(model: Any, adapters: Sequence[tuple[LoraAdapter, float]]) -> dict[str, int]:
    """Add Σ wᵢ·ΔWᵢ to `model`'s weights in place. Returns {module: number of adapters that touched it}."""
    import torch

    params = dict(model.named_parameters())
    touched: dict[str, int] = {}
    with torch.no_grad():
        for adapter, _ in adapters:
            for module in adapter.modules:
                if f"{module}.weight" not in params:
                    raise ConfigError(
                        f"adapter {adapter.path} targets {module}, which the base model does not have: "
                        "it was trained on a different architecture"
                    )
        modules = sorted({m for a, _ in adapters for m in a.modules})
        for module in modules:
            p = params[f"{module}.weight"]
            acc = p.detach().double().cpu()
            for adapter, weight in adapters:
                if module in adapter.modules and weight != 0:
                    d = adapter.delta(module)
                    if d.shape != acc.shape:
                        raise ConfigError(
                            f"adapter {adapter.path}: {module} delta is {tuple(d.shape)}, base weight is "
                            f"{tuple(acc.shape)}; the adapter belongs to another base model"
                        )
                    acc += weight * d
            p.copy_(acc.to(dtype=p.dtype, device=p.device))
            touched[module] = sum(1 for a, _ in adapters if module in a.modules)
    return touched


def combined_adapter(
    adapters: Sequence[tuple[LoraAdapter, float]], *, base: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One LoRA equal to Σ wᵢ·ΔWᵢ: (adapter_config, tensors) with rank Σrᵢ per module and α = rank (scale 1)."""
    import torch

    fan = {bool(a.config.get("fan_in_fan_out")) for a, _ in adapters}
    if len(fan) > 1:
        raise ConfigError("cannot combine adapters with different fan_in_fan_out settings into one LoRA")
    modules = sorted({m for a, _ in adapters for m in a.modules})
    tensors: dict[str, Any] = {}
    ranks: dict[str, int] = {}
    for module in modules:
        a_parts, b_parts = [], []
        for adapter, weight in adapters:
            f = adapter.modules.get(module)
            if f is None:  # this adapter leaves the module alone: a zero block keeps the sum exact
                continue
            a_parts.append(f.a.double())
            b_parts.append(f.b.double() * (weight * f.scale))
        a = torch.cat(a_parts, dim=0).float().contiguous()
        b = torch.cat(b_parts, dim=1).float().contiguous()
        ranks[module] = a.shape[0]
        tensors[f"base_model.model.{module}.lora_A.weight"] = a
        tensors[f"base_model.model.{module}.lora_B.weight"] = b
    first = dict(adapters[0][0].config)
    rank = max(ranks.values())
    config = {
        **first,
        "base_model_name_or_path": base,
        "r": rank,
        "lora_alpha": rank,
        "use_rslora": False,
        "target_modules": modules,  # full names: exactly the modules some adapter touched
        # Modules that fewer adapters touched have a smaller rank; alpha follows so every scale is 1.
        "rank_pattern": {m: r for m, r in ranks.items() if r != rank},
        "alpha_pattern": {m: r for m, r in ranks.items() if r != rank},
        "lora_dropout": 0.0,
    }
    for k in ("layers_to_transform", "layers_pattern", "exclude_modules"):
        config.pop(k, None)
    return config, tensors


def save_combined_adapter(out_dir: Path, config: dict[str, Any], tensors: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out_dir / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    (out_dir / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
