"""Enough unique constitution questions for the distill pool, or a clear refusal, before anything runs.

The distill pool asks `ceil(distill.pairs x max_attempts_factor / k)` prompts, `persona_prompt_share`
of them constitution questions, each k times. The paper asks 500 unique questions of a 10-trait
persona (5 hand-written + 45 generated per trait, paper-method 1.2) and never repeats one; a
hand-written constitution has about 5 per trait. `distill.prompt_shortfall` says what happens when the
supply is short:

- `cycle`: the questions are asked again (`bank.dpo_prompt_pool` gives repeats ids `~r1`, ...), with a
  warning saying how often each is asked: fine for smoke runs and small demos.
- `expand`: the teacher writes more first (`prompts/expand.py`, what `character generate prompts` runs),
  into the persona's expanded-prompts file, until the training share of the supply covers the need.
- `refuse`: stop before any generation with the exact `character generate prompts` command to run.

About 10 % of expanded questions are held back for evaluation (`bank.HELDOUT_EXPANDED_PER_MILLE`), so
the per-trait target allows for them.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from character.errors import DataError, UsageError
from character.prompts import bank

if TYPE_CHECKING:
    from character.config import RunConfig
    from character.constitutions import Constitution
    from character.cost import CostTracker

log = logging.getLogger(__name__)

MAX_EXPANSIONS = 3  # rounds of top-up when the held-back share or the teacher leaves the supply short


@dataclass
class Supply:
    needed: int
    """Unique constitution questions the pool asks."""
    available: int
    """Training questions on hand after any expansion (hand-written + expanded, minus the held-back share)."""
    pool: int
    """Prompts in the pool (each asked k times)."""
    expanded: int = 0
    """Questions the teacher wrote in this call."""
    mode: str = "cycle"

    @property
    def short(self) -> int:
        return max(0, self.needed - self.available)

    def as_dict(self) -> dict[str, int | str]:
        return asdict(self)


def pool_size(cfg: RunConfig) -> int:
    d = cfg.distill
    return math.ceil(math.ceil(d.pairs * d.max_attempts_factor) / d.k)


def persona_need(cfg: RunConfig) -> int:
    return round(pool_size(cfg) * cfg.distill.persona_prompt_share)


def per_trait_target(c: Constitution, need: int) -> int:
    """Questions per trait (hand-written included) to ask `generate prompts` for, so that the training
    share of the supply reaches `need` after the held-back share of expanded questions."""
    n = len(c.traits)
    hand = min(len(t.questions) for t in c.traits)
    keep = 1 - bank.HELDOUT_EXPANDED_PER_MILLE / 1000
    return hand + math.ceil(max(0, math.ceil(need / n) - hand) / keep) + 1


def command(c: Constitution, per_trait: int) -> str:
    resume = " --resume" if bank.expanded_path(c.name).exists() else ""
    return f"character generate prompts --persona {c.name} --per-trait {per_trait}{resume}"


def ensure_persona_supply(
    cfg: RunConfig, c: Constitution, *, tracker: CostTracker | None = None, progress: bool = True
) -> Supply:
    """Check (and under `expand`, grow) the constitution's unique questions against the pool's need."""
    mode = cfg.distill.prompt_shortfall
    sup = Supply(persona_need(cfg), len(bank.persona_prompts(c)), pool_size(cfg), mode=mode)
    if not sup.short:
        return sup
    if mode == "cycle":
        log.warning(
            "distill asks %d constitution questions but '%s' has %d: each is asked about %.1f times "
            "(distill.prompt_shortfall = 'expand' writes more first)",
            sup.needed,
            c.name,
            sup.available,
            sup.needed / max(sup.available, 1),
        )
        return sup
    target = per_trait_target(c, sup.needed)
    if mode == "refuse":
        raise UsageError(
            f"distill needs {sup.needed} unique constitution questions ({cfg.distill.persona_prompt_share:g} of "
            f"{sup.pool} prompts) but '{c.name}' has {sup.available}; run `{command(c, target)}` first, or set "
            "distill.prompt_shortfall = 'expand' (or 'cycle' to ask questions again)"
        )
    from character.prompts.expand import expand_with_config

    for attempt in range(MAX_EXPANSIONS):
        log.info(
            "distill needs %d unique constitution questions, '%s' has %d: expanding to %d per trait",
            sup.needed,
            c.name,
            sup.available,
            target,
        )
        res = expand_with_config(
            cfg, c, bank.expanded_path(c.name), progress=progress, tracker=tracker, per_trait=target
        )
        sup.expanded += res.added
        sup.available = len(bank.persona_prompts(c))
        if not sup.short or (res.added == 0 and attempt > 0):
            break
        target += math.ceil(sup.short / len(c.traits) / (1 - bank.HELDOUT_EXPANDED_PER_MILLE / 1000)) + 1
    if sup.short:
        raise DataError(
            f"prompt expansion left '{c.name}' with {sup.available} of the {sup.needed} unique constitution "
            f"questions distill needs (the teacher wrote {sup.expanded}); run `{command(c, target)}` with a "
            "stronger teacher, or lower distill.persona_prompt_share"
        )
    return sup
