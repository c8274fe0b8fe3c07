"""Which prompts an evaluation uses: the prompt bank's held-out prompts (never used in training), or a
file the user gives (`--prompts FILE`: plain text, one prompt a line, or JSONL rows with `text` or
`prompt` and optionally `id`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from character.constitutions import Constitution
from character.errors import DataError, UsageError


def load_prompt_file(path: Path, n: int | None = None) -> list[tuple[str, str]]:
    path = Path(path)
    if not path.exists():
        raise UsageError(f"prompt file {path} does not exist")
    out = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            try:
                row = json.loads(line)
                text = row.get("text") or row.get("prompt")
            except (json.JSONDecodeError, AttributeError) as e:
                raise DataError(f"{path}:{i} is not a JSON object ({e})") from e
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{path}:{i} has no 'text' or 'prompt' string")
            pid = str(row.get("id") or f"f-{hashlib.sha256(text.encode()).hexdigest()[:10]}")
        else:
            text = line.strip()
            pid = f"f-{hashlib.sha256(text.encode()).hexdigest()[:10]}"
        out.append((pid, text))
    if not out:
        raise DataError(f"prompt file {path} holds no prompts")
    return out[:n] if n else out


def eval_prompts(c: Constitution, n: int, seed: int, path: Path | None = None) -> list[tuple[str, str]]:
    """`n` evaluation prompts: from `path` when given, else the bank's held-out prompts for `c`."""
    if path is not None:
        return load_prompt_file(path, n)
    from character.prompts.bank import heldout_prompts

    return [(p.id, p.text) for p in heldout_prompts(c, n, seed)]
