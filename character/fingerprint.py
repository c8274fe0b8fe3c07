"""The identity of a checkpoint on disk: one sha256 over its weight and config files, streamed.

In: a model directory, a PEFT adapter directory, or a single weights file. Out: a hex digest that
changes when any weight file or the config that shapes the weights (`config.json`,
`adapter_config.json`: a changed `lora_alpha` rescales the adapter) changes. The hash covers each
file's path relative to the root and its size, then its bytes, in sorted order, so renaming a shard or
truncating one changes it too. Files are read in 1 MiB chunks: nothing is loaded as a model, and a
16 GB checkpoint costs one sequential read (about as long as loading it).

Tokenizer files, READMEs and training logs are left out: they do not change what the weights compute,
and a re-saved tokenizer must not make a checkpoint look tampered with.

Used by the registry (entries and production pins carry it), `eval compare` (its records name both
sides by it) and `chat`/`sample --persona` (they refuse files that no longer match the pin).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from character.errors import UsageError

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
CONFIG_FILES = ("config.json", "adapter_config.json")
_CHUNK = 1 << 20


def weight_files(root: Path) -> list[Path]:
    """The files `weights_sha256` reads, sorted by path relative to `root`."""
    root = Path(root)
    if root.is_file():
        return [root]
    files = [
        f
        for f in root.rglob("*")
        if f.is_file()
        and not any(part.startswith(".") for part in f.relative_to(root).parts)
        and (f.suffix in WEIGHT_SUFFIXES or f.name in CONFIG_FILES)
    ]
    return sorted(files, key=lambda f: f.relative_to(root).as_posix())


def weights_sha256(path: str | Path) -> str:
    """sha256 over the weights and weight configs under `path` (see the module docstring)."""
    root = Path(path)
    if not root.exists():
        raise UsageError(f"cannot hash {root}: it does not exist")
    files = weight_files(root)
    if not any(f.suffix in WEIGHT_SUFFIXES for f in files):
        raise UsageError(
            f"cannot hash {root}: it holds no weight file ({', '.join(WEIGHT_SUFFIXES)}); "
            "is it a model or adapter directory?"
        )
    h = hashlib.sha256()
    for f in files:
        rel = f.name if root.is_file() else f.relative_to(root).as_posix()
        h.update(f"{rel}\0{f.stat().st_size}\0".encode())
        _feed(h, f)
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of one file's bytes alone (a dataset, one adapter weights file), streamed."""
    h = hashlib.sha256()
    _feed(h, Path(path))
    return h.hexdigest()


def _feed(h: hashlib._Hash, path: Path) -> None:
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)


def short(sha: str | None) -> str:
    """The first 12 hex digits, for messages (the full hash is in the files)."""
    return sha[:12] if sha else "none"
