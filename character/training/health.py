"""Health gates for training: a TrainerCallback that writes every log to metrics.jsonl and stops bad runs.

A model can be destroyed without a single NaN: at lr 1e4 the embedded model went uniform (entropy
10.80 = ln 49152, logits exactly 0, chosen replies 19 nats less likely) while its loss, 0.1 x NLL,
sat under a fixed ceiling of 2.0. So the gates judge what the model does, not only whether numbers
are finite, and each message names the metric, its value, the threshold and the fix.

At every logged step (step 1 is the untouched model: its loss is computed before the first update):
- non-finite loss, grad norm, reward or log-prob (`logging_nan_inf_filter=False` is required, or
  transformers hides a NaN step loss behind a running average; `training_args_guard` checks it);
- collapse (`collapse_findings`):
  - loss above `max_loss_factor` x the run's first logged loss (the ceiling fits the loss: IPO
    starts at (1/2β)² = 25 with β 0.1, sigmoid DPO near 0.7 plus its NLL term, SFT at the model's NLL);
  - mean token entropy at or above `max_entropy_share` x ln(vocabulary), unless the run started there
    (a random-init model is uniform from the start: there is nothing to collapse);
  - DPO: `logits/chosen` and `logits/rejected` both exactly 0;
  - DPO likelihood displacement: the chosen replies' log-prob per token more than
    `max_chosen_logp_drop` nats below the reference's (rewards/chosen ÷ β ÷ mean chosen tokens);
  - DPO: the policy's NLL on the chosen replies above `max_nll_ratio` x the base model's NLL on the
    same rows. The reference in our DPO *is* the base (the adapter disabled) and TRL scores it on every
    batch, so logps/chosen − rewards/chosen/β is the base's log-prob of exactly the logged rows.
After `warmup_logs` logged steps (noisy signals): an absolute `max_loss` if set, a loss flat for
`flat_window` logs, DPO margins exactly 0 (the adapter is not training), and DPO reward accuracy below
`min_reward_accuracy` as the mean of the last `reward_accuracy_window` logged steps in which the
policy already differs from the reference (one noisy step does not kill a healthy run; step 1, where
TRL logs accuracy 0.0 because policy = reference, is never counted).

The callback only sets `should_training_stop`; the stage calls `raise_if_aborted()` after `train()`
returns, so an aborted adapter is never saved under the name a later stage would pick up.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from character.config import HealthConfig
from character.errors import ConfigError, TrainingAborted

_WATCHED_PREFIXES = ("loss", "grad_norm", "rewards/", "logps/", "eval_loss", "train_loss")


def training_args_guard(args: Any) -> None:
    if getattr(args, "logging_nan_inf_filter", True):
        raise ConfigError(
            "training args keep logging_nan_inf_filter=True, which hides NaN losses; set it to False"
        )


def _num(row: dict[str, Any], key: str) -> float | None:
    v = row.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def collapse_findings(
    row: dict[str, Any],
    first: dict[str, Any],
    health: HealthConfig,
    *,
    kind: str,
    beta: float | None = None,
    chosen_tokens: float | None = None,
    vocab_size: int | None = None,
) -> list[str]:
    """Every collapse rule `row` breaks, one phrase each (metric, value, threshold). `first` is the run's
    first logged row (the untouched model on the first batch)."""
    out: list[str] = []
    key = f"{kind}.health"
    loss, start = _num(row, "loss"), _num(first, "loss")
    if (
        row is not first
        and loss is not None
        and start
        and start > 0
        and loss > health.max_loss_factor * start
    ):
        out.append(
            f"loss {loss:.4g} > {key}.max_loss_factor {health.max_loss_factor:g} x the run's first loss {start:.4g}"
        )
    entropy = _num(row, "entropy")
    if entropy is not None and vocab_size and vocab_size > 1:
        limit = health.max_entropy_share * math.log(vocab_size)
        began = _num(first, "entropy")
        if entropy >= limit and (began is None or began < limit):
            out.append(
                f"entropy {entropy:.2f} >= {key}.max_entropy_share {health.max_entropy_share:g} x "
                f"ln({vocab_size}) = {limit:.2f} (the run started at "
                f"{began if began is not None else float('nan'):.2f}): next-token probabilities are near uniform"
            )
    if kind != "dpo":
        return out
    if row.get("logits/chosen") == 0 and row.get("logits/rejected") == 0:
        out.append("logits/chosen and logits/rejected are exactly 0: the output layer is dead")
    chosen_reward, chosen_logp = _num(row, "rewards/chosen"), _num(row, "logps/chosen")
    if beta and chosen_reward is not None:
        logratio = chosen_reward / beta  # summed over a chosen reply's tokens, batch mean
        if chosen_tokens and chosen_tokens > 0:
            drop = -logratio / chosen_tokens
            if drop > health.max_chosen_logp_drop:
                out.append(
                    f"likelihood displacement: chosen log-prob per token {drop:.2f} nats below the reference "
                    f"(rewards/chosen {chosen_reward:.4g} / beta {beta:g} / {chosen_tokens:.1f} tokens) > "
                    f"{key}.max_chosen_logp_drop {health.max_chosen_logp_drop:g}"
                )
        if chosen_logp is not None:
            base_logp = chosen_logp - logratio
            if base_logp < 0 and chosen_logp / base_logp > health.max_nll_ratio:
                out.append(
                    f"chosen NLL {chosen_logp / base_logp:.2f} x the base model's on the same rows "
                    f"(logps/chosen {chosen_logp:.4g} vs base {base_logp:.4g}) > "
                    f"{key}.max_nll_ratio {health.max_nll_ratio:g}"
                )
    return out


def reward_accuracy_window(history: list[dict[str, Any]], window: int) -> tuple[float, int] | None:
    """(mean, steps) of rewards/accuracies over the last `window` logged steps whose rewards are not all
    exactly 0 (policy = reference, where TRL's strict `>` logs 0.0 whatever the data), or None."""
    vals = [
        float(r["rewards/accuracies"])
        for r in history
        if isinstance(r.get("rewards/accuracies"), (int, float))
        and not (r.get("rewards/chosen") == 0 and r.get("rewards/rejected") == 0)
    ][-window:]
    return (sum(vals) / len(vals), len(vals)) if vals else None


class HealthCallback(TrainerCallback):
    """Writes every log to `metrics_path` and stops training at the first logged step a gate fires.

    DPO gates need `beta` and `chosen_tokens` (mean completion tokens of the training pairs' chosen
    replies); the entropy gate needs `vocab_size`, read from the model when training starts if not given.
    """

    def __init__(
        self,
        health: HealthConfig,
        metrics_path: Path,
        *,
        kind: str,
        beta: float | None = None,
        chosen_tokens: float | None = None,
        vocab_size: int | None = None,
    ):
        self.health = health
        self.kind = kind  # "dpo" or "sft"
        self.metrics_path = Path(metrics_path)
        self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
        self.beta = beta
        self.chosen_tokens = chosen_tokens
        self.vocab_size = vocab_size
        self.learning_rate: float | None = None
        self.reason: str | None = None
        self.history: list[dict[str, Any]] = []
        self._flat = 0

    # -- transformers hooks -----------------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        self.learning_rate = getattr(args, "learning_rate", None)
        if self.vocab_size is None and model is not None:
            size = getattr(getattr(model, "config", None), "vocab_size", None)
            self.vocab_size = int(size) if isinstance(size, int) else None

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        if not logs:
            return
        row = {"step": state.global_step, **{k: _jsonable(v) for k, v in logs.items()}}
        if state.is_world_process_zero:  # logs are already reduced across processes: write them once
            with open(self.metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")
                f.flush()
                os.fsync(f.fileno())
        if not _judged(logs):
            return  # eval or summary logs: recorded, not judged
        self.history.append(row)
        reason = self.check(row)
        if reason and self.reason is None:
            self.reason = f"step {state.global_step}: {reason}"
            control.should_training_stop = True

    def restore(self, rows: list[dict[str, Any]]) -> None:
        """Continue from a resumed run's logged rows (up to its checkpoint): the gates' history goes on."""
        for row in rows:
            if not _judged(row):
                continue
            self.history.append(row)
            self.check(row)  # replays the rules' running state (flat counter, ...); these steps passed

    # -- rules ------------------------------------------------------------------------------------
    def fix(self) -> str:
        lr = f" (now {self.learning_rate:g})" if self.learning_rate else ""
        return f"lower {self.kind}.learning_rate{lr}"

    def check(self, row: dict[str, Any]) -> str | None:
        """The reason to stop at `row` (already appended to `history`), or None."""
        for k, v in row.items():
            if k.startswith(_WATCHED_PREFIXES) and isinstance(v, (int, float, str)) and not _finite(v):
                return f"non-finite {k} = {v}; {self.fix()}"
        n = len(self.history)
        h = self.health
        loss = _num(row, "loss")
        if n > 1 and loss is not None:
            prev = _num(self.history[-2], "loss")
            if prev:
                self._flat = self._flat + 1 if abs(loss - prev) / abs(prev) < h.flat_rel_change else 0
        first = self.history[0] if self.history else row
        found = collapse_findings(
            row,
            first,
            h,
            kind=self.kind,
            beta=self.beta,
            chosen_tokens=self.chosen_tokens,
            vocab_size=self.vocab_size,
        )
        if found:
            return f"collapse: {'; '.join(found)}; {self.fix()}"
        if n <= h.warmup_logs:
            return None
        if loss is not None and h.max_loss is not None and loss > h.max_loss:
            return f"loss {loss:.4f} > {self.kind}.health.max_loss {h.max_loss} after warm-up; {self.fix()}"
        if self._flat >= h.flat_window:
            return (
                f"loss flat (relative change < {h.flat_rel_change}) for {self._flat} logged steps: "
                f"the model stopped learning; raise {self.kind}.learning_rate or check the data"
            )
        if self.kind == "dpo":
            # A row's forward pass sees the updates of the steps before it: margins are exactly 0 at
            # any step up to the first update with a learning rate above 0 (step 1 of a warm-up is 0).
            updated = any(_num(r, "learning_rate") != 0 for r in self.history[:-1])
            if (
                updated
                and row.get("rewards/margins") == 0
                and row.get("rewards/chosen") == 0
                and row.get("rewards/rejected") == 0
            ):
                return "reward margins exactly 0 after warm-up: the adapter is not training (check lora.target_modules)"
            acc = reward_accuracy_window(self.history, h.reward_accuracy_window)
            if acc is not None and acc[0] < h.min_reward_accuracy:
                return (
                    f"reward accuracy {acc[0]:.3f} (mean of the last {acc[1]} logged steps) < "
                    f"dpo.health.min_reward_accuracy {h.min_reward_accuracy:g} after warm-up: the adapter "
                    f"prefers the rejected replies; check the pairs (distill/previews.md) or {self.fix()}"
                )
        return None

    def raise_if_aborted(self) -> None:
        if self.reason:
            raise TrainingAborted(
                f"{self.kind} training aborted at {self.reason} (metrics: {self.metrics_path})"
            )


def _judged(logs: dict[str, Any]) -> bool:
    return "loss" in logs or any(k.startswith("rewards/") for k in logs)


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return True


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # "nan"/"inf": JSON has no literal for them
    if hasattr(v, "item"):
        return _jsonable(v.item())
    return v
