"""Checkpoint verification: a saved adapter must reproduce, from disk, the numbers the trainer reported.

A run once shipped a checkpoint whose logged metric claimed 0.53 and measured -0.007. So after every
save, a stage loads the adapter from disk into a *fresh* copy of the base model, recomputes its
held-out metrics with code that is not the trainer's, and compares them with what the trainer
claimed; a gap beyond tolerance raises `VerificationError` and the adapter is not promoted.

Generic parts (any stage): `load_adapter_fresh`, `compare_metrics` -> `VerificationReport`,
`VerificationReport.raise_if_failed`, `write_report`. DPO-specific: `dpo_heldout_metrics`, which
recomputes held-out loss and reward accuracy exactly the way TRL's evaluation batches them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from character.atomic import atomic_write_json
from character.errors import VerificationError

log = logging.getLogger(__name__)


# ---- generic: claimed vs measured -----------------------------------------------------------------


class MetricCheck(BaseModel):
    name: str
    claimed: float
    measured: float
    tolerance: float
    relative: bool = False
    gap: float
    ok: bool


class VerificationReport(BaseModel):
    what: str  # e.g. "dpo adapter artifacts/runs/x/dpo/adapter"
    checks: list[MetricCheck]
    rows: int = 0

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.checks)

    def summary(self) -> str:
        return "; ".join(
            f"{c.name}: claimed {c.claimed:.4f}, measured {c.measured:.4f} "
            f"({'relative ' if c.relative else ''}gap {c.gap:.4f} {'<=' if c.ok else '>'} {c.tolerance:g})"
            for c in self.checks
        )

    def raise_if_failed(self, hint: str = "") -> None:
        if not self.passed:
            raise VerificationError(
                f"{self.what} does not reproduce what the trainer reported on {self.rows} held-out rows: "
                f"{self.summary()}{'; ' + hint if hint else ''}"
            )


def metric_gap(claimed: float, measured: float, *, relative: bool) -> float:
    if not (math.isfinite(claimed) and math.isfinite(measured)):
        return math.inf
    gap = abs(claimed - measured)
    return gap / max(abs(claimed), 1e-8) if relative else gap


def compare_metrics(
    claimed: Mapping[str, float],
    measured: Mapping[str, float],
    *,
    tolerance: float | Mapping[str, float],
    relative: bool | Mapping[str, bool] = False,
    what: str = "checkpoint",
    rows: int = 0,
) -> VerificationReport:
    """Compare every metric in `measured` with the trainer's claim (a missing claim is a failure)."""
    checks = []
    for name, m in measured.items():
        tol = tolerance[name] if isinstance(tolerance, Mapping) else tolerance
        rel = relative.get(name, False) if isinstance(relative, Mapping) else relative
        c = claimed.get(name)
        c_val = float(c) if c is not None else math.nan
        gap = metric_gap(c_val, float(m), relative=rel)
        checks.append(
            MetricCheck(
                name=name,
                claimed=c_val,
                measured=float(m),
                tolerance=tol,
                relative=rel,
                gap=gap,
                ok=gap <= tol,
            )
        )
    return VerificationReport(what=what, checks=checks, rows=rows)


def write_report(path: Path, report: VerificationReport) -> None:
    atomic_write_json(path, {**report.model_dump(mode="json"), "passed": report.passed})


def load_adapter_fresh(base_ref: str, adapter_dir: Path, device_pref: str = "auto") -> Any:
    """A fresh base model from disk with the saved adapter on top (nothing shared with the trainer)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from character.models import dtype_for, pick_device, resolve_model

    dev = pick_device(device_pref)
    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").exists():
        raise VerificationError(f"{adapter_dir} holds no adapter_config.json: the adapter was not saved")
    base = AutoModelForCausalLM.from_pretrained(resolve_model(base_ref), dtype=dtype_for(dev))
    model = PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=False)
    model.to(dev).eval()
    torch.set_grad_enabled(True)
    return model


# ---- DPO: held-out loss and reward accuracy, recomputed -------------------------------------------


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def tokenize_pair(tokenizer: Any, row: Mapping[str, Any]) -> tuple[list[int], list[int], list[int]]:
    """(prompt, chosen, rejected) token ids, split where TRL splits them (the common prefix)."""
    from character.chat import encode

    p = encode(tokenizer, row["prompt"], add_generation_prompt=True)
    pc = encode(tokenizer, row["prompt"] + row["chosen"], add_generation_prompt=False)
    pr = encode(tokenizer, row["prompt"] + row["rejected"], add_generation_prompt=False)
    n = min(_common_prefix(p, pc), _common_prefix(p, pr))
    return p[:n], pc[n:], pr[n:]


def sequence_logps(
    model: Any, seqs: list[tuple[list[int], list[int]]], pad_id: int, max_length: int
) -> tuple[Any, Any]:
    """Per-token log-probs of each completion under `model`.

    `seqs` holds (prompt ids, completion ids); sequences are truncated from the end to `max_length`
    (TRL's keep_start) and right-padded. Returns (per-token logps [B, T-1], completion mask [B, T-1]).
    """
    import torch

    ids = [(p + c)[:max_length] for p, c in seqs]
    mask = [([0] * len(p) + [1] * len(c))[:max_length] for p, c in seqs]
    width = max(len(x) for x in ids)
    dev = next(model.parameters()).device
    input_ids = torch.tensor([x + [pad_id] * (width - len(x)) for x in ids], device=dev)
    attention = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids], device=dev)
    comp = torch.tensor([m + [0] * (width - len(m)) for m in mask], device=dev)
    with torch.inference_mode():
        logits = model(input_ids=input_ids, attention_mask=attention).logits.float()
    logps = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    shift_mask = comp[:, 1:]
    return logps * shift_mask, shift_mask


def dpo_heldout_metrics(
    model: Any,
    tokenizer: Any,
    rows: Sequence[Mapping[str, Any]],
    *,
    beta: float,
    loss: str,
    nll_weight: float,
    max_length: int,
    batch_size: int,
    world_size: int = 1,
) -> dict[str, float]:
    """Held-out DPO metrics of a PEFT model: policy = adapter on, reference = adapter off.

    Batched as TRL's evaluation batches them (sequential, `batch_size` pairs; with `world_size`
    processes, sharded and topped up as accelerate does: `distributed.eval_batches`): `eval_loss` is
    the sample-weighted mean of batch losses, reward accuracy and margins the mean over evaluation
    steps of each step's mean, so a healthy checkpoint reproduces the trainer's numbers to float
    precision.
    """
    import torch
    import torch.nn.functional as F

    from character.training.distributed import eval_batches

    if not rows:
        raise VerificationError("no held-out pairs to verify against: raise dpo.eval_fraction")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    losses, sizes = [], []
    step_acc: list[Any] = []  # per-sample accuracy / margin tensors of the current step
    step_margin: list[Any] = []
    accs, margins = [], []
    batches = eval_batches(len(rows), batch_size, world_size)
    seen = 0
    for b, index in enumerate(batches):
        batch = [tokenize_pair(tokenizer, rows[i]) for i in index]
        seqs = [(p, c) for p, c, _ in batch] + [(p, r) for p, _, r in batch]
        pol_tok, mask = sequence_logps(model, seqs, pad, max_length)
        with model.disable_adapter():
            ref_tok, _ = sequence_logps(model, seqs, pad, max_length)
        pol, ref = pol_tok.sum(1), ref_tok.sum(1)
        n = len(batch)
        chosen_lr, rejected_lr = (pol - ref)[:n], (pol - ref)[n:]
        if loss == "ipo":
            c_len, r_len = mask[:n].sum(1).clamp(min=1), mask[n:].sum(1).clamp(min=1)
            delta = chosen_lr / c_len - rejected_lr / r_len
            pref = ((delta - 1 / (2 * beta)) ** 2).mean()
        else:
            pref = (-F.logsigmoid(beta * (chosen_lr - rejected_lr))).mean()
        total = pref
        if nll_weight > 0:
            chosen_mask = mask[:n].bool()
            total = total + nll_weight * (-pol_tok[:n][chosen_mask].mean())
        cr, rr = beta * chosen_lr, beta * rejected_lr
        losses.append(float(total))
        # The trainer gathers per-row losses and drops the top-up rows; rewards keep them (gather).
        sizes.append(max(0, min(n, len(rows) - seen)))
        seen += n
        step_acc.append((cr > rr).float())
        step_margin.append(cr - rr)
        if (b + 1) % max(1, world_size) == 0 or b == len(batches) - 1:
            accs.append(float(torch.cat(step_acc).mean()))
            margins.append(float(torch.cat(step_margin).mean()))
            step_acc, step_margin = [], []
    return {
        "eval_loss": float(sum(x * s for x, s in zip(losses, sizes, strict=True)) / sum(sizes)),
        "eval_rewards/accuracies": float(torch.tensor(accs).mean()),
        "eval_rewards/margins": float(torch.tensor(margins).mean()),
    }


DPO_VERIFIED_METRICS = ("eval_loss", "eval_rewards/accuracies")


def verify_dpo_adapter(
    *,
    base_ref: str,
    adapter_dir: Path,
    tokenizer: Any,
    rows: Sequence[Mapping[str, Any]],
    claimed: Mapping[str, float],
    beta: float,
    loss: str,
    nll_weight: float,
    max_length: int,
    batch_size: int,
    tolerance: float,
    device_pref: str = "auto",
    world_size: int = 1,
) -> tuple[VerificationReport, dict[str, float]]:
    """Load `adapter_dir` into a fresh base, recompute held-out metrics, compare with `claimed`."""
    model = load_adapter_fresh(base_ref, adapter_dir, device_pref)
    measured = dpo_heldout_metrics(
        model,
        tokenizer,
        rows,
        beta=beta,
        loss=loss,
        nll_weight=nll_weight,
        max_length=max_length,
        batch_size=batch_size,
        world_size=world_size,
    )
    report = compare_metrics(
        claimed,
        {k: measured[k] for k in DPO_VERIFIED_METRICS},
        tolerance=tolerance,
        what=f"dpo adapter {adapter_dir}",
        rows=len(rows),
    )
    log.info("verification of %s: %s", adapter_dir, report.summary())
    return report, measured
