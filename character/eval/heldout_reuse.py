"""The eval stage's held-out replies, handed to its robustness step instead of generated twice.

The robustness step's unmodified replies (the classifier's training prompts and the scored prompts'
`default` variant) are requests the eval stage has already made: the same models (base, DPO-only,
final), the same held-out prompts (the robustness pool is drawn from `bank.heldout_prompts` with the
same seed, so it is a subset of the stage's prompts), no system prompt, the same sampling parameters
and seed. When the settings agree (`robustness.max_new_tokens == eval.max_new_tokens`), those replies
are written into `eval/robustness_replies.jsonl` under the robustness step's own keys
(`robustness.replies.KEY`, settings fingerprint included), and the step reads them as if it had
generated them (it resumes from that file): the measurement is unchanged, the generation is not
repeated. Rows already in the file are never replaced; settings that differ reuse nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from character.constitutions import Constitution
from character.eval.robustness.classifier import BASE_LABEL
from character.eval.robustness.replies import KEY, settings_fingerprint
from character.eval.robustness.suffixes import DEFAULT_ID
from character.eval.target import Target, eval_params
from character.records import JsonlStore

log = logging.getLogger(__name__)


def robustness_rows(
    cfg: Any,
    c: Constitution,
    sides: dict[str, Target],
    prompts: Sequence[tuple[str, str]],
    replies: Mapping[str, Sequence[str]],
    finish: Mapping[str, Sequence[str]],
) -> list[dict[str, Any]]:
    """The robustness step's rows for the eval stage's replies (empty when the settings differ)."""
    r = cfg.robustness
    if r.max_new_tokens != cfg.eval.max_new_tokens:
        return []
    params = eval_params(cfg, max_new_tokens=r.max_new_tokens)
    settings = settings_fingerprint(params, {"followup": r.followup, "persona": c.name})
    # eval side -> (robustness source key, classifier label)
    sources = {"before": ("base", BASE_LABEL), "after": ("full", c.name)}
    if r.dpo_only:
        sources["dpo_only"] = ("dpo_only", c.name)
    rows = []
    for side, (key, label) in sources.items():
        if side not in sides:
            continue
        for (pid, text), reply, fin in zip(prompts, replies[side], finish[side], strict=True):
            row: dict[str, Any] = dict(
                zip(KEY, (key, sides[side].label, "single", DEFAULT_ID, pid, 1, settings), strict=True)
            )
            row.update(label=label, user=text, text=reply, finish_reason=fin, reused_from="eval/replies")
            rows.append(row)
    return rows


def seed_robustness_replies(path: Path, rows: list[dict[str, Any]]) -> int:
    """Append the rows `path` does not hold yet; returns how many were written."""
    if not rows:
        return 0
    store = JsonlStore(Path(path), KEY)
    have = store.keys()
    new = [row for row in rows if store.key(row) not in have]
    if new:
        store.append(new)
        log.info("robustness: %d unmodified replies reused from the held-out evaluation", len(new))
    return len(new)
