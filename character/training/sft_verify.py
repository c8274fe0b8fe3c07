"""Checkpoint verification for SFT: does the adapter on disk reproduce the held-out loss the trainer claimed?

A checkpoint's logged metric is a claim. After saving, the adapter is loaded from disk onto a fresh copy
of its base model, the held-out loss is recomputed here (our own forward passes and our own masked NLL,
not the trainer's code), and compared with the trainer's `eval_loss`. A relative gap beyond
`sft.verify_tolerance` fails the stage: the saved file is not the model that was measured (wrong base,
adapter not saved, wrong precision, masking drift...). The base model's held-out loss is measured too,
so the manifest shows what training changed.

The trainer's `eval_loss` is the mean over evaluation batches (in order, `per_device_eval_batch_size`
rows each) of each batch's token-mean loss, weighted by rows per batch; `batch_mean` reproduces that
definition, `token_mean` is the plain per-token loss over all held-out targets.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from character.errors import VerificationError
from character.training.sft import IGNORE, SFTExample

log = logging.getLogger(__name__)


def heldout_loss(
    model: Any, examples: list[SFTExample], *, batch_size: int, pad_id: int, world_size: int = 1
) -> dict[str, float]:
    """Masked next-token NLL on `examples`, batched like the trainer's evaluation loop.

    With `world_size` processes the batches are those accelerate deals out (topped up from the start,
    `distributed.eval_batches`); the trainer keeps only the first len(examples) per-row losses.
    """
    import torch
    import torch.nn.functional as F

    from character.training.distributed import eval_batches

    device = next(model.parameters()).device
    weighted, rows, nll_sum, n_tokens = 0.0, 0, 0.0, 0
    seen = 0
    model.eval()
    with torch.inference_mode():
        for index in eval_batches(len(examples), batch_size, world_size):
            batch = [examples[i] for i in index]
            weight = max(0, min(len(batch), len(examples) - seen))
            seen += len(batch)
            width = max(len(e.input_ids) for e in batch)
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for r, e in enumerate(batch):
                n = len(e.input_ids)
                ids[r, :n] = torch.tensor(e.input_ids)
                labels[r, :n] = torch.tensor(e.labels)
                mask[r, :n] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
            # Position t predicts token t+1.
            shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1])
            shift_labels = labels[:, 1:].reshape(-1).to(device)
            nll = F.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE, reduction="sum")
            count = int((shift_labels != IGNORE).sum())
            if count == 0:
                continue
            if weight == 0:
                continue  # a top-up batch: the trainer drops its rows
            weighted += float(nll) / count * weight
            rows += weight
            if weight == len(batch):  # per-token figures count each real row once
                nll_sum += float(nll)
                n_tokens += count
    if n_tokens == 0:
        raise VerificationError("the held-out rows have no target tokens; nothing to verify against")
    return {"batch_mean": weighted / rows, "token_mean": nll_sum / n_tokens, "tokens": float(n_tokens)}


def verify_adapter(
    base_ref: str,
    adapter_dir: Path,
    held: list[SFTExample],
    *,
    claimed_loss: float,
    tolerance: float,
    batch_size: int,
    device_pref: str,
    pad_id: int,
    report_path: Path | None = None,
    world_size: int = 1,
) -> dict[str, Any]:
    """Reload `adapter_dir` on a fresh `base_ref` and compare its held-out loss with `claimed_loss`.

    Uses the shared claimed-vs-measured check (`character.training.verify`). Returns the numbers for the
    manifest; raises VerificationError when the relative gap exceeds `tolerance`, when a number is not
    finite, or when the adapter is a no-op (every LoRA B is zero).
    """
    from character.training.verify import compare_metrics, load_adapter_fresh, write_report

    model = load_adapter_fresh(base_ref, adapter_dir, device_pref)
    b_norm = sum(float(p.detach().float().abs().sum()) for n, p in model.named_parameters() if "lora_B" in n)
    if b_norm == 0.0:
        raise VerificationError(
            f"the adapter in {adapter_dir} is a no-op (every lora_B is zero): training never changed it"
        )
    measured = heldout_loss(model, held, batch_size=batch_size, pad_id=pad_id, world_size=world_size)
    with model.disable_adapter():
        before = heldout_loss(model, held, batch_size=batch_size, pad_id=pad_id, world_size=world_size)
    report = compare_metrics(
        {"eval_loss": claimed_loss},
        {"eval_loss": measured["batch_mean"]},
        tolerance=tolerance,
        relative=True,
        what=f"sft adapter {adapter_dir}",
        rows=len(held),
    )
    if report_path is not None:
        write_report(report_path, report)
    report.raise_if_failed(
        hint="the saved adapter is not the model that was evaluated (sft.verify_tolerance)"
    )
    log.info(
        "SFT checkpoint verified: held-out loss claimed %.4f, measured %.4f (base %.4f)",
        claimed_loss,
        measured["batch_mean"],
        before["batch_mean"],
    )
    return {
        "claimed_eval_loss": claimed_loss,
        "measured_eval_loss": measured["batch_mean"],
        "measured_eval_loss_per_token": measured["token_mean"],
        "base_eval_loss": before["batch_mean"],
        "heldout_target_tokens": int(measured["tokens"]),
        "relative_gap": report.checks[0].gap,
        "tolerance": tolerance,
    }
