"""The paper preset is the paper: its values agree with the paper's (character/paper_values.py) except
deliberate, explained deviations; pairs = prompts x K; the paper's learning-rate schedule is what
transformers builds; `character info` shows the paper's values with their source."""

from __future__ import annotations

import math
import re

import pytest
from typer.testing import CliRunner

from character.cli import app
from character.config_layers import get_value, leaf_keys, resolve
from character.paper_values import DEVIATIONS, PAPER


def test_every_paper_key_is_a_setting() -> None:
    assert set(PAPER) <= set(leaf_keys())
    assert set(DEVIATIONS) <= set(PAPER)


def test_preset_holds_every_paper_value_except_explained_deviations() -> None:
    cfg = resolve(presets=["paper"], environ={}).config
    differs = {k for k, pv in PAPER.items() if get_value(cfg, k) != pv.value}
    assert differs == set(DEVIATIONS), "a paper value changed without a reason in DEVIATIONS (or vice versa)"
    assert all(len(why) > 20 for why in DEVIATIONS.values())


def test_pairs_are_prompts_times_k() -> None:
    cfg = resolve(presets=["paper"], environ={}).config
    d = cfg.distill
    prompts = math.ceil(d.pairs * d.max_attempts_factor / d.k)
    assert prompts * d.k == d.pairs == 9150  # no top-up: every prompt asked exactly K times
    # A 10-trait persona gets the paper's 500 constitution questions (50 per trait), the rest generic.
    assert round(prompts * d.persona_prompt_share) == 500 and prompts == 1830
    assert d.prompt_shortfall == "expand"  # never cycles 50 hand-written questions to fill 500


@pytest.mark.parametrize("section", ["dpo", "sft"])
def test_paper_schedule_ends_at_a_tenth_of_the_peak(section: str) -> None:
    import torch
    from transformers import get_scheduler

    from character.training.common import stage_training_kwargs

    cfg = resolve(presets=["paper"], environ={}).config
    kw = stage_training_kwargs(cfg, getattr(cfg, section), "/tmp/unused")
    assert kw["lr_scheduler_type"] == "cosine_with_min_lr" and kw["adam_beta2"] == 0.98
    peak = getattr(cfg, section).learning_rate
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    # What Trainer does with these arguments (transformers' own scheduler factory).
    sched = get_scheduler(
        kw["lr_scheduler_type"], opt, num_warmup_steps=10, num_training_steps=100,
        scheduler_specific_kwargs=kw["lr_scheduler_kwargs"],
    )  # fmt: skip
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert max(lrs) == pytest.approx(peak)
    assert lrs[-1] == pytest.approx(0.1 * peak, rel=0.02)  # plain cosine would end near 0
    assert min(lrs[10:]) >= 0.1 * peak * 0.999


def test_default_schedule_is_plain_cosine() -> None:
    from character.training.common import stage_training_kwargs

    cfg = resolve(environ={}).config
    kw = stage_training_kwargs(cfg, cfg.dpo, "/tmp/unused")
    assert kw["lr_scheduler_type"] == "cosine" and not kw.get("lr_scheduler_kwargs")


def _rows(output: str) -> dict[str, list[str]]:
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line) if c.strip()]
        if len(cells) >= 5 and cells[0] in set(leaf_keys()):
            rows[cells[0]] = cells
    return rows


def test_info_shows_paper_values_with_their_source() -> None:
    env = {"COLUMNS": "300"}
    plain = CliRunner().invoke(app, ["info"], env=env)
    paper = CliRunner().invoke(app, ["--paper-scale", "info"], env=env)
    assert plain.exit_code == 0 and paper.exit_code == 0, plain.output + paper.output
    a, b = _rows(plain.output), _rows(paper.output)
    # Defaults differ from the paper: the paper column shows the paper's value and where it is from.
    assert a["dpo.learning_rate"][2] == "5e-05" and "paper-method 1.6" in a["dpo.learning_rate"][4]
    assert a["dpo.lr_scheduler"][1:3] == ["cosine", "cosine_with_min_lr"]
    assert a["distill.pairs"][2] == "9150" and "1,830" in a["distill.pairs"][4]
    # Under --paper-scale the preset's values are the paper's ("="), except the explained deviations.
    assert b["dpo.learning_rate"][1:4] == ["5e-05", "=", "preset:paper"]
    assert (
        b["sampling.max_new_tokens"][1:3] == ["1024", "4096"]
        and "preset differs" in b["sampling.max_new_tokens"][4]
    )
    assert b["distill.teacher_prefill"][1:3] == ["off", "think"]
    # A setting the paper has no value for says so instead of echoing the current value.
    assert b["distill.save_every"][2] == "-" and b["distill.save_every"][4] == "-"
