"""What a checkpoint reference means, how to generate from it, and whether two are the same model.

A checkpoint is `embedded`, a path (a full model directory, or a PEFT adapter directory whose base is
read from its adapter_config.json), or a registry name (an adapter entry carries its base). Served
models (backend `openai`/`vllm`) are named as the server knows them.

Two references are the same checkpoint when they resolve to the same real path or their weights hash
the same (a copy of a model directory is still the same model: the seed report's promotion pipeline
benchmarked one server twice for four nights).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from character import registry
from character.backends.base import Completion, GenerationRequest, SamplingParams, make_backend
from character.errors import ConfigError
from character.models import resolve_model, resolve_or_served_name
from character.records import Message

if TYPE_CHECKING:
    from character.config import RunConfig

log = logging.getLogger(__name__)

ADAPTER_NAME = "ckpt"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


@dataclass
class Target:
    """A resolved checkpoint: the model to load and, for an adapter checkpoint, the adapter on it."""

    ref: str
    model: str
    adapter: str | None = None
    name: str | None = None  # registry name, when it came from the registry
    persona: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.ref

    def local_paths(self) -> list[Path]:
        out = []
        for p in (self.model, self.adapter):
            if p and Path(p).exists():
                out.append(Path(p).resolve())
        return out


def _adapter_base(adapter_dir: Path) -> str:
    cfg_file = adapter_dir / "adapter_config.json"
    base = json.loads(cfg_file.read_text()).get("base_model_name_or_path")
    if not base:
        raise ConfigError(
            f"adapter {adapter_dir} names no base_model_name_or_path in adapter_config.json; "
            "register it with its base (`registry.Checkpoint(kind='adapter', base=...)`)"
        )
    return str(base)


def _looks_like_path(ref: str) -> bool:
    """A reference written as a filesystem path (a hub id is `org/name`: one slash, no leading dot)."""
    return ref.startswith(("/", "./", "../", "~")) or ref.endswith("/") or ref.count("/") > 1


def resolve_target(ref: str) -> Target:
    """Resolve `embedded`, a path or a registry name into a loadable `Target`."""
    entry = registry.find(ref) if not Path(ref).expanduser().exists() else None
    if entry is None and _looks_like_path(ref) and not Path(ref).expanduser().exists():
        raise ConfigError(
            f"checkpoint '{ref}' does not exist: give a model directory, a PEFT adapter directory, a "
            "registry name (`character checkpoint list`) or `embedded`"
        )
    if entry is not None:
        if entry.kind == "adapter":
            return Target(ref, resolve_model(entry.base), entry.path, entry.name, entry.persona)
        return Target(ref, resolve_model(entry.path), None, entry.name, entry.persona)
    # A name no local lookup knows may be what a server serves (`gpt-4.1`); loading it in process fails
    # later with resolve_model's one-line error.
    path = resolve_or_served_name(ref)
    p = Path(path)
    if p.is_dir() and (p / "adapter_config.json").exists() and not (p / "config.json").exists():
        return Target(ref, resolve_model(_adapter_base(p)), str(p))
    return Target(ref, path)


def weights_fingerprint(target: Target) -> str | None:
    """sha256 over the weight files of the model (and adapter); None for a served/hub model."""
    paths = target.local_paths()
    if not paths:
        return None
    h = hashlib.sha256()
    for root in paths:
        files = sorted(f for f in root.rglob("*") if f.is_file() and f.suffix in WEIGHT_SUFFIXES)
        for f in files:
            with open(f, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
    return h.hexdigest()


def same_checkpoint(a: Target, b: Target) -> str | None:
    """Why `a` and `b` are the same model, or None when they differ."""
    pa, pb = a.local_paths(), b.local_paths()
    if pa and pa == pb:
        return f"'{a.ref}' and '{b.ref}' resolve to the same path {pa[0]}"
    if not pa and not pb and (a.model, a.adapter) == (b.model, b.adapter):
        return f"'{a.ref}' and '{b.ref}' name the same served model '{a.model}'"
    if pa and pb:
        fa, fb = weights_fingerprint(a), weights_fingerprint(b)
        if fa and fa == fb:
            return f"'{a.ref}' and '{b.ref}' have identical weights (sha256 {fa[:12]})"
    return None


class Generator:
    """A backend opened on a target; generates replies to conversations."""

    def __init__(self, cfg: RunConfig, target: Target, backend: Any = None, *, role: str = "student"):
        self.target = target
        self.role = role  # whose engine generates (roles.<role>): the models under test are the student's
        adapters = {ADAPTER_NAME: target.adapter} if target.adapter else None
        try:
            self.backend = backend or make_backend(cfg, target.model, adapters=adapters, role=role)
        except OSError as e:  # transformers' "not found / cannot reach the hub": one line, not a traceback
            raise ConfigError(
                f"cannot load checkpoint '{target.ref}' ({target.model}): {str(e).splitlines()[0]}; give a "
                "local directory, a registry name, `embedded`, or a hub id already in the local cache"
            ) from e
        self.adapter = ADAPTER_NAME if target.adapter else None

    def generate(
        self,
        conversations: list[list[Message]],
        params: SamplingParams,
        *,
        prefill: str | None = None,
        progress: bool = True,
    ) -> list[list[Completion]]:
        reqs = [
            GenerationRequest(
                m, conversation_params(params, m, prefill), prefill=prefill, adapter=self.adapter
            )
            for m in conversations
        ]
        return self.backend.generate(reqs, progress=progress) if reqs else []

    def replies(
        self, conversations: list[list[Message]], params: SamplingParams, *, progress: bool = True
    ) -> list[str]:
        """First completion per conversation, think blocks stripped."""
        from character.backends.think import strip_think

        return [strip_think(c[0].text) for c in self.generate(conversations, params, progress=progress)]

    def close(self) -> None:
        self.backend.close()


def conversation_params(
    params: SamplingParams, messages: list[Message], prefill: str | None
) -> SamplingParams:
    """`params` with a seed of this conversation's own, drawn from `params.seed` and its content.

    Engines draw each request from a stream seeded by its own seed (vLLM; the hf backend's
    `SeededSampler`): one seed for a whole prompt set gave every reply the same random numbers, so
    all replies were the same quantile of their distributions (47 of the embedded model's 100 held-out
    replies in report 009's demo opened with "A"). Keyed by content, a prompt draws the same numbers
    on every model under test (a paired comparison) and the same sample on a rerun; unseeded params
    stay unseeded."""
    import dataclasses

    from character.backends.seeds import request_seed

    if params.seed is None:
        return params
    key = hashlib.sha256(json.dumps([messages, prefill], sort_keys=True).encode()).hexdigest()[:16]
    return dataclasses.replace(params, seed=request_seed(params.seed, key, 0))


def open_generator(cfg: RunConfig, ref: str, *, role: str = "student") -> Generator:
    return Generator(cfg, resolve_target(ref), role=role)


def conversation(prompt: str, system: str | None = None) -> list[Message]:
    msgs: list[Message] = [{"role": "system", "content": system}] if system else []
    return [*msgs, {"role": "user", "content": prompt}]


def eval_params(cfg: RunConfig, *, max_new_tokens: int | None = None, n: int = 1) -> SamplingParams:
    e = cfg.eval
    return SamplingParams(
        temperature=e.temperature,
        top_p=e.top_p,
        max_new_tokens=max_new_tokens or e.max_new_tokens,
        repetition_penalty=1.0,
        n=n,
        seed=e.seed,
    )
