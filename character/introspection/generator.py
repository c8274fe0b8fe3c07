"""Which model writes the introspection data: the DPO model, found the same way every time.

In order: `introspect.checkpoint` (a registry name, a full model directory, a PEFT adapter directory or
any model reference); else the run's `dpo/merged` (base + verified adapter, folded exactly); else the
run's `dpo/adapter` on `models.student`; else `models.student` itself, with a warning, because data
written by the untrained model teaches SFT nothing about the persona (the paper generates with the
DPO model: paper-method 1.7).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from character import layout, registry
from character.errors import ConfigError

log = logging.getLogger(__name__)

ADAPTER_NAME = "dpo"


@dataclass
class Generator:
    """A model reference plus, optionally, one PEFT adapter loaded on it under `adapter`."""

    model: str
    adapter_path: str | None = None
    source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def adapter(self) -> str | None:
        return ADAPTER_NAME if self.adapter_path else None

    @property
    def adapters(self) -> dict[str, str] | None:
        return {ADAPTER_NAME: self.adapter_path} if self.adapter_path else None

    def describe(self) -> str:
        if self.adapter_path:
            return f"{self.model} + adapter {self.adapter_path} ({self.source})"
        return f"{self.model} ({self.source})"


def _is_adapter_dir(p: Path) -> bool:
    return p.is_dir() and (p / "adapter_config.json").exists()


def _adapter_base(adapter_dir: Path, fallback: str) -> str:
    """The base an adapter was trained on, if it can be opened here; else `fallback` (with a warning)."""
    try:
        base = json.loads((adapter_dir / "adapter_config.json").read_text()).get("base_model_name_or_path")
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(
            f"{adapter_dir}/adapter_config.json cannot be read ({e}); re-save the adapter"
        ) from e
    if base and (Path(base).expanduser().exists() or registry.find(base)):
        return str(base)
    log.warning(
        "adapter %s names base %r, which is not available here; loading it on models.student = %r",
        adapter_dir,
        base,
        fallback,
    )
    return fallback


def from_checkpoint(ref: str, student: str) -> Generator:
    """Resolve `--checkpoint`: registry name, adapter dir, full model dir or a plain model reference."""
    ck = registry.find(ref)
    if ck is not None:
        if not Path(ck.path).exists():
            raise ConfigError(
                f"introspect.checkpoint = {ref!r} is registered at {ck.path}, which does not exist; "
                "re-register it or pass a path"
            )
        if ck.kind == "adapter":
            return Generator(ck.base, ck.path, f"registry:{ref}")
        return Generator(ck.path, None, f"registry:{ref}")
    p = Path(ref).expanduser()
    if p.exists():
        if _is_adapter_dir(p):
            return Generator(_adapter_base(p, student), str(p.resolve()), "checkpoint adapter")
        if (p / "config.json").exists():
            return Generator(str(p.resolve()), None, "checkpoint model")
        raise ConfigError(
            f"introspect.checkpoint = {ref!r} is a path with neither config.json nor adapter_config.json; "
            "give a model directory, a PEFT adapter directory or a registry name"
        )
    # `embedded` or a hub id already in the local cache; models.resolve_model reports anything else.
    return Generator(ref, None, "checkpoint reference")


def choose(checkpoint: str, run_dir: Path, student: str) -> Generator:
    if checkpoint:
        return from_checkpoint(checkpoint, student)
    merged = layout.dpo_merged(run_dir)
    if (merged / "config.json").exists():
        return Generator(str(merged), None, "run dpo/merged")
    adapter = layout.dpo_adapter(run_dir)
    if _is_adapter_dir(adapter):
        return Generator(student, str(adapter), "run dpo/adapter")
    g = Generator(student, None, "models.student (no DPO model)")
    g.notes.append("no DPO model found: generating with the untrained student")
    log.warning(
        "no DPO model in %s (neither dpo/merged nor dpo/adapter) and no introspect.checkpoint: "
        "introspection data will come from the UNTRAINED student %r, which carries no persona. "
        "Run `character train dpo` first or pass --checkpoint.",
        run_dir,
        student,
    )
    return g
