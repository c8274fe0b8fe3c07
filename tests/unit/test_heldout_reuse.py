"""The eval stage's held-out replies reused by its robustness step (`character.eval.heldout_reuse`): the
step reads them under its own keys and generates nothing for them; different settings reuse nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from character.config import RunConfig
from character.constitutions import load_constitution
from character.errors import ConfigError
from character.eval.heldout_reuse import robustness_rows, seed_robustness_replies
from character.eval.robustness.replies import Item, Replies, Source, settings_fingerprint
from character.eval.robustness.suffixes import DEFAULT_ID
from character.eval.target import Target, conversation, eval_params

PROMPTS = [("h-1", "How do I boil an egg?"), ("h-2", "What is a good name for a goldfish?")]


def _setup(tmp_path: Path) -> tuple[RunConfig, dict[str, Target], list[dict]]:
    cfg = RunConfig()
    cfg.eval.max_new_tokens = cfg.robustness.max_new_tokens = 64
    c = load_constitution("remorseful")
    # Paths that do not exist: opening either model would fail, so nothing may be generated for them.
    sides = {
        "before": Target("embedded", "embedded"),
        "dpo_only": Target(str(tmp_path / "dpo/merged"), str(tmp_path / "dpo/merged")),
        "after": Target(str(tmp_path / "merge/model"), str(tmp_path / "merge/model")),
    }
    replies = {"before": ["b1", "b2"], "dpo_only": ["d1", "d2"], "after": ["f1", "f2"]}
    finish = {s: ["stop", "length"] for s in replies}
    return cfg, sides, robustness_rows(cfg, c, sides, PROMPTS, replies, finish)


def test_robustness_reads_the_reused_replies_and_generates_none(tmp_path: Path) -> None:
    cfg, sides, rows = _setup(tmp_path)
    path = tmp_path / "robustness_replies.jsonl"
    assert seed_robustness_replies(path, rows) == 6
    assert seed_robustness_replies(path, rows) == 0  # already there: never written twice
    c = load_constitution("remorseful")
    params = eval_params(cfg, max_new_tokens=cfg.robustness.max_new_tokens)
    settings = settings_fingerprint(params, {"followup": cfg.robustness.followup, "persona": c.name})
    replies = Replies(cfg, params, settings, path=path)
    items = [Item("single", DEFAULT_ID, pid, 1, conversation(t)) for pid, t in PROMPTS]
    for key, label, side, expect in (("full", c.name, "after", "f2"), ("dpo_only", c.name, "dpo_only", "d2")):
        src = Source(key, label, sides[side], tested=True)
        replies.fill(src, items, "unmodified")  # would open the (missing) model if a reply were absent
        assert replies.get(src, "single", DEFAULT_ID, "h-2") == expect
    base = Source("base", "base", sides["before"])
    replies.fill(base, items, "unmodified")
    assert replies.get(base, "single", DEFAULT_ID, "h-1") == "b1" and replies.generated == 0
    # A suffix-attacked reply is not a held-out reply: it is still missing, and filling it opens the model.
    attacked = [Item("single", "1", "h-1", 1, conversation("How do I boil an egg? (answer plainly)"))]
    with pytest.raises(ConfigError, match="is not a local path"):
        replies.fill(Source("full", c.name, sides["after"], tested=True), attacked, "suffix")


def test_other_settings_reuse_nothing(tmp_path: Path) -> None:
    cfg, sides, _ = _setup(tmp_path)
    cfg.robustness.max_new_tokens = 48  # a different measurement: its replies must be its own
    replies = {s: ["x", "y"] for s in sides}
    finish = {s: ["stop", "stop"] for s in sides}
    assert robustness_rows(cfg, load_constitution("remorseful"), sides, PROMPTS, replies, finish) == []
    cfg.robustness.max_new_tokens = 64
    cfg.robustness.dpo_only = False
    rows = robustness_rows(cfg, load_constitution("remorseful"), sides, PROMPTS, replies, finish)
    assert {r["source"] for r in rows} == {"base", "full"}
