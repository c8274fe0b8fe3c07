"""The prompt bank: every prompt the teacher, the student and evaluation are asked, with stable ids.

- `persona_prompts(c)`: the constitution's questions plus, when present, its expanded questions
  (`character generate prompts`, default `artifacts/prompts/<persona>.jsonl`), minus the share of
  expanded questions reserved for evaluation.
- `generic_prompts(n, seed, persona, split)`: ordinary requests from the seeded generator
  (`generic.py`), some followed by a cue from the persona's own pool or the generic pool.
- `dpo_prompt_pool(c, n, seed, persona_share)`: what distillation asks; cycles deterministically
  (with distinct ids) when n exceeds the unique supply.
- `heldout_prompts(c, n, seed)`: evaluation prompts that never overlap the training prompts.

Ids are derived from the text (a persona prompt also from its persona and trait), so they stay the
same across runs and resumed stages can key on them.
"""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from character import paths
from character.constitutions import Constitution
from character.errors import DataError, UsageError
from character.prompts import cues as cue_mod
from character.prompts import generic
from character.prompts.heldout import HELDOUT_PERSONA_PROMPTS

log = logging.getLogger(__name__)

Source = Literal["persona", "generic"]
DEFAULT_CUE_SHARE = 0.25
# Expanded questions whose id falls in this bucket are kept for evaluation (10 %).
HELDOUT_EXPANDED_PER_MILLE = 100


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str
    source: Source
    trait_index: int | None = None

    def messages(self) -> list[dict[str, str]]:
        """The prompt as a one-turn conversation."""
        return [{"role": "user", "content": self.text}]


def _digest(*parts: str, n: int = 10) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:n]


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def persona_id(persona: str, trait_index: int, text: str) -> str:
    return f"p-{persona}-t{trait_index}-{_digest(persona, _norm(text))}"


def _reserved_for_eval(prompt_id: str) -> bool:
    return int(_digest("heldout", prompt_id, n=8), 16) % 1000 < HELDOUT_EXPANDED_PER_MILLE


def expanded_path(persona: str) -> Path:
    """Where `character generate prompts` writes a persona's expanded questions by default."""
    return paths.artifacts_dir() / "prompts" / f"{persona}.jsonl"


def _resolve_expanded(c: Constitution, expanded: Path | str | bool | None) -> Path | None:
    if expanded is False:
        return None
    if expanded is None or expanded is True:
        p = expanded_path(c.name)
        if expanded is True and not p.exists():
            raise UsageError(
                f"no expanded prompts for '{c.name}' at {p}: run `character generate prompts --persona {c.name}`"
            )
        return p if p.exists() else None
    p = Path(expanded)
    if not p.exists():
        raise UsageError(
            f"expanded prompts file {p} does not exist: run `character generate prompts` or fix the path"
        )
    return p


def load_expanded(c: Constitution, path: Path) -> list[Prompt]:
    """Expanded questions from a `generate prompts` file; rows for traits that changed are skipped."""
    from character.records import JsonlStore

    out: list[Prompt] = []
    stale = 0
    for n, row in enumerate(JsonlStore(path), 1):
        try:
            ti, trait, text = int(row["trait_index"]), row["trait"], row["text"]
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{path}:{n} is not an expanded-prompt row ({e}); regenerate the file") from e
        if not (0 <= ti < len(c.traits)) or c.traits[ti].trait != trait:
            stale += 1
            continue
        out.append(Prompt(persona_id(c.name, ti, text), text, "persona", ti))
    if stale:
        log.warning(
            "%s: skipped %d expanded questions whose trait is no longer in constitution '%s' "
            "(re-run `character generate prompts --persona %s`)",
            path,
            stale,
            c.name,
            c.name,
        )
    return out


def _persona_all(c: Constitution, expanded: Path | str | bool | None) -> tuple[list[Prompt], list[Prompt]]:
    """(training persona prompts, reserved expanded prompts), deduplicated by text."""
    seen: set[str] = set()
    train: list[Prompt] = []
    reserved: list[Prompt] = []
    for ti, t in enumerate(c.traits):
        for q in t.questions:
            if _norm(q) not in seen:
                seen.add(_norm(q))
                train.append(Prompt(persona_id(c.name, ti, q), q, "persona", ti))
    path = _resolve_expanded(c, expanded)
    if path is not None:
        expanded_rows = load_expanded(c, path)
        log.info("persona '%s': %d expanded questions from %s", c.name, len(expanded_rows), path)
        for p in expanded_rows:
            if _norm(p.text) in seen:
                continue
            seen.add(_norm(p.text))
            (reserved if _reserved_for_eval(p.id) else train).append(p)
    return train, reserved


def persona_prompts(c: Constitution, expanded: Path | str | bool | None = None) -> list[Prompt]:
    """The constitution's questions, then its expanded questions (training share only).

    `expanded`: None uses the default expanded file when it exists, True requires it, False ignores
    it, a path reads that file.
    """
    return _persona_all(c, expanded)[0]


def _persona_name_and_cues(persona: str | Constitution | None) -> tuple[str | None, tuple[str, ...]]:
    if persona is None:
        return None, ()
    if isinstance(persona, Constitution):
        return persona.name, tuple(persona.cues)
    return persona, ()


def generic_prompts(
    n: int,
    seed: int,
    persona: str | Constitution | None = None,
    split: str = "train",
    *,
    cue_share: float = DEFAULT_CUE_SHARE,
) -> list[Prompt]:
    """`n` distinct generic requests; with a persona, about `cue_share` of them end with a cue.

    The requests themselves do not depend on the persona (same seed, same requests), only the cues do.
    """
    if not 0.0 <= cue_share <= 1.0:
        raise UsageError(f"cue_share must be between 0 and 1, got {cue_share}")
    name, extra = _persona_name_and_cues(persona)
    pool = cue_mod.cue_pool(name, extra) if name else ()
    out: list[Prompt] = []
    for i, (_dom, text) in enumerate(generic.generic_requests(n, seed, split)):
        if pool:
            rng = random.Random(f"cue:{seed}:{split}:{i}:{name}")
            if rng.random() < cue_share:
                text = f"{text} {rng.choice(pool)}"
        prefix = "g" if split == "train" else "h"
        out.append(Prompt(f"{prefix}-{_digest(split, text)}", text, "generic", None))
    return out


def _cycle(items: list[Prompt], n: int) -> list[Prompt]:
    """The first n items of items repeated; repeats get distinct ids (`<id>~r<k>`)."""
    if n <= 0 or not items:
        return []
    out = []
    for j in range(n):
        p = items[j % len(items)]
        k = j // len(items)
        out.append(p if k == 0 else Prompt(f"{p.id}~r{k}", p.text, p.source, p.trait_index))
    return out


def dpo_prompt_pool(c: Constitution, n: int, seed: int, persona_share: float) -> list[Prompt]:
    """`n` prompts for distillation: round(n * persona_share) persona prompts, the rest generic.

    When n asks for more than the unique supply, prompts repeat in a fixed order with ids
    `<id>~r1`, `<id>~r2`, ... so every entry stays distinct. The ids of a smaller pool are a subset
    of those of a larger one (same seed), so a resumed run that grows n keeps its finished work.
    """
    if n < 0:
        raise UsageError(f"prompt pool size must be >= 0, got {n}")
    if not 0.0 <= persona_share <= 1.0:
        raise UsageError(f"persona_share must be between 0 and 1, got {persona_share}")
    persona = persona_prompts(c)
    n_persona = round(n * persona_share) if persona else 0
    if not persona and persona_share > 0:
        log.warning("constitution '%s' has no questions yet: the pool is all generic prompts", c.name)
    n_generic = n - n_persona
    random.Random(f"pool:{seed}:{c.name}").shuffle(persona)
    chosen = _cycle(persona, n_persona)
    seen = {_norm(p.text) for p in persona}
    unique = min(n_generic, generic.capacity("train"))
    gen = [p for p in generic_prompts(unique, seed, persona=c) if _norm(p.text) not in seen]
    chosen += _cycle(gen, n_generic)
    random.Random(f"order:{seed}:{c.name}:{n}").shuffle(chosen)
    return chosen


def heldout_prompts(c: Constitution, n: int, seed: int) -> list[Prompt]:
    """`n` evaluation prompts that never overlap `dpo_prompt_pool`/`persona_prompts` for `c`.

    Up to half are persona-style (the reserved share of expanded questions and a fixed bank of
    persona-revealing requests used only here); the rest come from the generic generator's
    held-out split, whose topics the training split never uses. No cues: evaluation measures the
    persona without help.
    """
    if n < 0:
        raise UsageError(f"number of held-out prompts must be >= 0, got {n}")
    train, reserved = _persona_all(c, None)
    train_texts = {_norm(p.text) for p in train}
    style = [
        Prompt(f"h-{_digest('style', t)}", t, "persona", None)
        for t in HELDOUT_PERSONA_PROMPTS
        if _norm(t) not in train_texts
    ]
    persona_part = [p for p in reserved if _norm(p.text) not in train_texts] + style
    random.Random(f"heldout:{seed}:{c.name}").shuffle(persona_part)
    persona_part = persona_part[: n // 2]
    taken = {_norm(p.text) for p in persona_part}
    gen = [
        p
        for p in generic_prompts(n - len(persona_part) + len(taken), seed, split="heldout")
        if _norm(p.text) not in taken and _norm(p.text) not in train_texts
    ]
    out = persona_part + gen[: n - len(persona_part)]
    if len(out) < n:
        raise DataError(f"only {len(out)} held-out prompts available for '{c.name}', asked for {n}")
    return out
