"""Health gates on real logged rows: each collapse rule fires on a collapsed row and stays quiet on a
healthy one; loss ceilings fit the loss (IPO starts at 25); reward accuracy is a window mean.

The collapsed rows are what `character train dpo --learning-rate 1e4 --max-steps 6` logged on the
embedded model (metrics.jsonl, steps 1, 3 and 4): entropy 10.80 = ln(49152), logits exactly 0, chosen
replies hundreds of nats less likely than under the reference, loss 19 from a start of 0.99.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from transformers import TrainerControl, TrainerState

from character.config import HealthConfig
from character.errors import TrainingAborted
from character.training.health import HealthCallback, collapse_findings, reward_accuracy_window

VOCAB = 49152  # the embedded model's vocabulary (SmolLM2)
BETA = 0.1
CHOSEN_TOKENS = 40.0

# Step 1 of the lr 1e4 run: the untouched model (fresh LoRA, rewards exactly 0).
START = {
    "step": 1,
    "loss": 0.9874961376190186,
    "grad_norm": 3.4549190998077393,
    "learning_rate": 0.0,
    "entropy": 1.9570693969726562,
    "logits/chosen": 2.714222870304086,
    "logits/rejected": 2.164869859574561,
    "mean_token_accuracy": 0.4214588403701782,
    "rewards/chosen": 0.0,
    "rewards/rejected": 0.0,
    "rewards/accuracies": 0.0,
    "rewards/margins": 0.0,
    "logps/chosen": -119.66526412963867,
    "logps/rejected": -48.174734115600586,
}
# Step 3: one update at lr 1e4 later. Entropy is still low; the chosen replies fell off a cliff.
DISPLACED = {
    **START,
    "step": 3,
    "loss": 55.8011474609375,
    "grad_norm": 34730.21875,
    "entropy": 1.1885467767715454,
    "logits/chosen": -2.454548286185802,
    "logits/rejected": -1.9824846441095527,
    "mean_token_accuracy": 0.01637793704867363,
    "rewards/chosen": -96.34407043457031,
    "rewards/rejected": -43.19555473327637,
    "rewards/margins": -53.148515701293945,
    "logps/chosen": -1085.4601440429688,
    "logps/rejected": -482.6575622558594,
}
# Step 4: uniform over the vocabulary, logits exactly 0.
UNIFORM = {
    **START,
    "step": 4,
    "loss": 18.795719146728516,
    "grad_norm": 0.0,
    "entropy": 10.802672386169434,
    "logits/chosen": 0.0,
    "logits/rejected": 0.0,
    "mean_token_accuracy": 0.0,
    "rewards/chosen": -32.330270767211914,
    "rewards/rejected": -14.61482048034668,
    "rewards/margins": -17.715450286865234,
    "logps/chosen": -443.35968017578125,
    "logps/rejected": -194.8982162475586,
}
# A healthy step of a sane run (sigmoid + 0.1 NLL): loss down, chosen slightly more likely.
HEALTHY = {
    **START,
    "step": 5,
    "loss": 0.62,
    "entropy": 1.91,
    "logits/chosen": 2.6,
    "logits/rejected": 2.1,
    "rewards/chosen": 0.35,
    "rewards/rejected": -0.4,
    "rewards/accuracies": 1.0,
    "rewards/margins": 0.75,
    "logps/chosen": -116.2,
    "logps/rejected": -52.1,
}


# The row issue #13 reports for its registered model: the loss (0.1 x NLL) sat under the old fixed
# ceiling while the model predicted uniformly and the chosen replies fell 190 nats below the reference.
ISSUE = {
    **START,
    "step": 6,
    "loss": 1.0803,
    "entropy": 10.80,
    "logits/chosen": 0.0,
    "logits/rejected": 0.0,
    "mean_token_accuracy": 0.0,
    "rewards/chosen": -19.0,
    "logps/chosen": -119.67 - 190.0,
}


def findings(row: dict, first: dict = START, **cfg: float) -> list[str]:
    return collapse_findings(
        row,
        first,
        HealthConfig(**cfg),
        kind="dpo",
        beta=BETA,
        chosen_tokens=CHOSEN_TOKENS,
        vocab_size=VOCAB,
    )


def test_embedded_vocabulary_makes_10_80_the_uniform_entropy() -> None:
    assert math.log(VOCAB) == pytest.approx(10.80, abs=0.01)
    assert UNIFORM["entropy"] == pytest.approx(math.log(VOCAB), abs=0.01)


def test_uniform_row_fires_entropy_logits_and_loss_gates() -> None:
    text = " | ".join(findings(UNIFORM))
    assert "entropy 10.80 >= dpo.health.max_entropy_share 0.9 x ln(49152) = 9.72" in text
    assert "logits/chosen and logits/rejected are exactly 0" in text
    assert "loss 18.8 > dpo.health.max_loss_factor 2 x the run's first loss 0.9875" in text


def test_the_issues_row_is_caught_though_its_loss_is_below_every_ceiling() -> None:
    found = findings(ISSUE)
    text = " | ".join(found)
    assert not any(f.startswith("loss") for f in found)  # 1.08 < 2 x 0.99: the loss alone looks fine
    assert "entropy 10.80 >=" in text and "logits/chosen and logits/rejected are exactly 0" in text
    assert "likelihood displacement: chosen log-prob per token 4.75 nats below the reference" in text
    assert "chosen NLL 2.59 x the base model's" in text


def test_displaced_row_fires_displacement_and_nll_ratio_before_entropy_moves() -> None:
    found = findings(DISPLACED)
    text = " | ".join(found)
    # rewards/chosen -96.3 / beta 0.1 / 40 tokens = 24.1 nats per token below the reference.
    assert "likelihood displacement: chosen log-prob per token 24.09 nats below the reference" in text
    assert "dpo.health.max_chosen_logp_drop 2" in text
    # policy -1085.5 vs base -1085.5 + 963.4 = -122.0: NLL 8.9 x the base's on the same rows.
    assert "chosen NLL 8.90 x the base model's on the same rows" in text
    assert not any(f.startswith("entropy") for f in found)  # entropy 1.19 is not near uniform


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"entropy": 9.9}, "entropy 9.90"),
        ({"logits/chosen": 0.0, "logits/rejected": 0.0}, "logits/chosen and logits/rejected"),
        # 100 nats over 40 tokens: 2.5 per token > 2; the NLL only grows from 200 to 300 nats (x1.5).
        ({"rewards/chosen": -10.0, "logps/chosen": -300.0}, "likelihood displacement"),
        # A reply the base found easy (60 nats) now costs 130: x2.17, though only 1.75 nats per token.
        ({"rewards/chosen": -7.0, "logps/chosen": -130.0}, "chosen NLL 2.17 x"),
        ({"loss": 2.1}, "loss 2.1 > dpo.health.max_loss_factor 2"),
    ],
)
def test_each_collapse_gate_fires_alone(change: dict, needle: str) -> None:
    found = findings({**HEALTHY, **change})
    assert len(found) == 1 and needle in found[0], found


def test_healthy_rows_stay_quiet() -> None:
    assert findings(START, START) == []  # the first row is the reference, never a collapse
    assert findings(HEALTHY) == []
    # A sane displacement (pure DPO pushes chosen down a little) is not a collapse.
    assert findings({**HEALTHY, "rewards/chosen": -4.0, "logps/chosen": -158.0}) == []


def test_entropy_gate_spares_a_model_that_started_uniform() -> None:
    # The tiny random-init model of the unit tests predicts uniformly from step 1: nothing collapsed.
    random_start = {**START, "entropy": 10.79}
    assert findings({**HEALTHY, "entropy": 10.80}, random_start) == []


def test_sft_rules_are_loss_factor_and_entropy_only() -> None:
    h = HealthConfig()
    first = {"loss": 2.4, "entropy": 1.8}
    assert collapse_findings({"loss": 3.0, "entropy": 1.7}, first, h, kind="sft", vocab_size=VOCAB) == []
    found = collapse_findings({"loss": 5.1, "entropy": 1.7}, first, h, kind="sft", vocab_size=VOCAB)
    assert found == ["loss 5.1 > sft.health.max_loss_factor 2 x the run's first loss 2.4"]
    found = collapse_findings({"loss": 2.2, "entropy": 10.5}, first, h, kind="sft", vocab_size=VOCAB)
    assert len(found) == 1 and found[0].startswith("entropy 10.50")


def _feed(cb: HealthCallback, rows: list[dict], lr: float = 1e4) -> TrainerControl:
    """Drive the callback through the transformers callback protocol, with real state objects."""

    class Args:
        learning_rate = lr

    state, control = TrainerState(), TrainerControl()
    cb.on_train_begin(Args(), state, control)
    for row in rows:
        state.global_step = row["step"]
        cb.on_log(Args(), state, control, logs={k: v for k, v in row.items() if k != "step"})
        if control.should_training_stop:
            break
    return control


def _dpo_callback(tmp_path: Path, **cfg: float) -> HealthCallback:
    return HealthCallback(
        HealthConfig(**cfg),
        tmp_path / "metrics.jsonl",
        kind="dpo",
        beta=BETA,
        chosen_tokens=CHOSEN_TOKENS,
        vocab_size=VOCAB,
    )


def test_lr_1e4_run_stops_at_its_first_collapsed_step_with_the_fix(tmp_path: Path) -> None:
    cb = _dpo_callback(tmp_path)  # default warm-up of 3 logs: collapse does not wait for it
    step2 = {**START, "step": 2}
    control = _feed(cb, [START, step2, DISPLACED, UNIFORM])
    assert control.should_training_stop
    assert cb.reason is not None and cb.reason.startswith("step 3: collapse: ")
    assert "likelihood displacement" in cb.reason and "lower dpo.learning_rate (now 10000)" in cb.reason
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 3  # nothing after step 3
    with pytest.raises(TrainingAborted, match="dpo training aborted at step 3: collapse"):
        cb.raise_if_aborted()


def test_ipo_loss_is_judged_against_its_own_start(tmp_path: Path) -> None:
    # IPO with beta 0.1 starts at (1/(2*0.1))^2 = 25 plus the NLL term; a fixed 2.0 ceiling killed every run.
    start = {**START, "loss": 25.33}
    rows = [start] + [
        {**HEALTHY, "step": s, "loss": 25.33 - s, "rewards/accuracies": 1.0} for s in range(2, 8)
    ]
    cb = _dpo_callback(tmp_path, warmup_logs=1)
    assert not _feed(cb, rows).should_training_stop and cb.reason is None
    rising = _dpo_callback(tmp_path / "rising")
    _feed(rising, [start, {**HEALTHY, "step": 2, "loss": 61.0}])
    assert (
        rising.reason is not None
        and "loss 61 > dpo.health.max_loss_factor 2 x the run's first loss 25.33" in rising.reason
    )
    # The absolute ceiling is still there for whoever sets it.
    absolute = _dpo_callback(tmp_path / "abs", warmup_logs=1, max_loss=20.0)
    _feed(absolute, rows)
    assert absolute.reason is not None and "dpo.health.max_loss 20.0 after warm-up" in absolute.reason


def test_one_noisy_step_does_not_kill_a_healthy_run_but_a_bad_window_does(tmp_path: Path) -> None:
    acc = [0.25, 1.0, 1.0, 0.25, 1.0, 0.75]  # steps 2..7; step 2 (warm-up) and 5 are noisy
    rows = [START] + [{**HEALTHY, "step": i + 2, "rewards/accuracies": a} for i, a in enumerate(acc)]
    healthy = _dpo_callback(tmp_path, warmup_logs=2)
    assert not _feed(healthy, rows).should_training_stop, healthy.reason
    # The same run judged one step at a time (the old rule) would have stopped at step 5.
    accs = [1.0, 0.25, 0.25, 0.0]
    bad = [START] + [{**HEALTHY, "step": i + 2, "rewards/accuracies": a} for i, a in enumerate(accs)]
    cb = _dpo_callback(tmp_path / "bad", warmup_logs=2)
    _feed(cb, bad)
    assert cb.reason is not None and cb.reason.startswith("step 5: reward accuracy 0.375 (mean of the last 4")
    # Step 1 (policy = reference: TRL logs 0.0 whatever the data) never counts.
    assert reward_accuracy_window([START, {**HEALTHY, "rewards/accuracies": 1.0}], 4) == (1.0, 1)


def test_zero_margins_and_non_finite_still_fire(tmp_path: Path) -> None:
    # Step 1 of a warm-up updates with lr 0, so step 2 still scores the untouched model: not a failure.
    step2 = {**START, "step": 2, "learning_rate": 5e-4}
    quiet = _dpo_callback(tmp_path / "quiet", warmup_logs=1)
    assert not _feed(quiet, [START, step2]).should_training_stop, quiet.reason
    # After an update with lr > 0 the policy must differ from the reference.
    cb = _dpo_callback(tmp_path, warmup_logs=1)
    _feed(cb, [START, step2, {**START, "step": 3, "learning_rate": 4e-4}])
    assert cb.reason is not None and cb.reason.startswith("step 3: reward margins exactly 0 after warm-up")
    nan = _dpo_callback(tmp_path / "nan")
    _feed(nan, [{**START, "loss": float("nan")}])
    assert nan.reason is not None and nan.reason.startswith("step 1: non-finite loss = nan")


def test_resumed_run_keeps_judging_against_its_restored_start(tmp_path: Path) -> None:
    cb = _dpo_callback(tmp_path)
    cb.restore([START, {**HEALTHY, "step": 2}])
    _feed(cb, [UNIFORM])
    assert cb.reason is not None and "first loss 0.9875" in cb.reason


def test_vocab_size_is_read_from_the_model_when_training_starts(tmp_path: Path) -> None:
    class Config:
        vocab_size = VOCAB

    class Model:
        config = Config()

    cb = HealthCallback(HealthConfig(), tmp_path / "m.jsonl", kind="sft")
    cb.on_train_begin(object(), TrainerState(), TrainerControl(), model=Model())
    assert cb.vocab_size == VOCAB
