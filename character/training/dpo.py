"""DPO training on preference pairs: TRL `DPOTrainer` + a PEFT LoRA adapter, set up the one way we trust.

In: `pairs.jsonl` rows in TRL's conversational explicit-prompt form (`prompt` = [user message],
`chosen`/`rejected` = [assistant message]) and the resolved config. Out: a trainer whose reference is
the base model with the adapter disabled (`ref_model=None` + `peft_config`: one set of weights, and the
reference scores exactly the tokens the policy scores), a health callback writing `metrics.jsonl`,
and helpers to drop over-long prompts ourselves and to merge a saved adapter into its base exactly.

Loss (paper 1.6): `sigmoid` DPO plus an NLL term on chosen replies with weight `dpo.nll_weight`
(TRL's multi-loss `["sigmoid", "sft"]`, which replaced the removed `rpo_alpha`), or `ipo`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from character.chat import encode
from character.config import RunConfig
from character.records import validate_messages
from character.training import tracking
from character.training.common import (
    load_training_model,
    lora_config,
    one_process_one_device,
    stage_training_kwargs,
)
from character.training.health import HealthCallback, training_args_guard
from character.training.resume import CompletionMarker

log = logging.getLogger(__name__)

PAIR_FIELDS = ("prompt", "chosen", "rejected")


def loss_spec(cfg: RunConfig) -> tuple[list[str], list[float]]:
    """TRL loss types and weights for the configured preference loss."""
    main = cfg.dpo.loss
    if cfg.dpo.nll_weight > 0:
        return [main, "sft"], [1.0, float(cfg.dpo.nll_weight)]
    return [main], [1.0]


def trl_pair(row: dict[str, Any], where: str = "pair") -> dict[str, Any]:
    """The three columns TRL reads, validated (anything else in the row is provenance, not data)."""
    out = {}
    for k in PAIR_FIELDS:
        if k not in row:
            from character.errors import DataError

            raise DataError(f"{where} has no '{k}' field; DPO rows need prompt, chosen and rejected")
        validate_messages(row[k], f"{where}.{k}")
        out[k] = [{"role": m["role"], "content": m["content"]} for m in row[k]]
    return out


def prompt_length(tokenizer: Any, row: dict[str, Any]) -> int:
    return len(encode(tokenizer, row["prompt"], add_generation_prompt=True))


def mean_chosen_tokens(
    tokenizer: Any, rows: Sequence[dict[str, Any]], max_length: int, limit: int = 1000
) -> float:
    """Mean completion tokens of the chosen replies as TRL trains them (cut to `max_length` with the
    prompt), over the first `limit` rows: turns the logged summed rewards into per-token numbers."""
    from character.training.verify import tokenize_pair

    sizes = []
    for row in rows[:limit]:
        p, c, _ = tokenize_pair(tokenizer, row)
        sizes.append(min(len(c), max(0, max_length - len(p))))
    return sum(sizes) / len(sizes) if sizes else 0.0


def drop_long_prompts(
    rows: Sequence[dict[str, Any]], tokenizer: Any, max_length: int
) -> tuple[list[dict[str, Any]], int]:
    """Drop rows whose rendered prompt alone reaches `max_length` (TRL would drop them silently)."""
    kept = [r for r in rows if prompt_length(tokenizer, r) < max_length]
    return kept, len(rows) - len(kept)


def dpo_args(cfg: RunConfig, output_dir: Path, run_name: str = "") -> Any:
    from trl import DPOConfig

    d = cfg.dpo
    loss_type, loss_weights = loss_spec(cfg)
    kwargs = stage_training_kwargs(cfg, cfg.dpo, str(output_dir), run_name=run_name)
    args = DPOConfig(
        **kwargs,
        beta=d.beta,
        loss_type=loss_type,
        loss_weights=loss_weights,
        max_length=d.max_length,
        truncation_mode="keep_start",
        eval_strategy="no",  # held-out metrics are computed once, after training, for verification
        remove_unused_columns=False,
        dataset_num_proc=None,
        # The reference scores each pair once, not once per epoch (the adapter-disabled base is fixed).
        precompute_ref_log_probs=d.precompute_ref_log_probs,
    )
    training_args_guard(args)
    one_process_one_device(args)
    return args


def load_policy_base(model_ref: str, cfg: RunConfig) -> Any:
    """The base model, fresh from disk, in training form (fp32 on CPU, bf16 on CUDA, 4/8-bit for QLoRA)."""
    return load_training_model(model_ref, cfg.lora, cfg.backend.device)


def build_trainer(
    cfg: RunConfig,
    model_ref: str,
    train_rows: Sequence[dict[str, Any]],
    eval_rows: Sequence[dict[str, Any]] | None,
    *,
    output_dir: Path,
    metrics_path: Path,
    tokenizer: Any = None,
    run_name: str = "",
) -> tuple[Any, HealthCallback]:
    """A DPOTrainer with a fresh LoRA on `model_ref`, the reference being the same model with the adapter off.

    Checkpoints go to `output_dir` (each marked COMPLETE when whole); trackers per `train.report_to`
    write next to `metrics_path`.
    """
    import datasets
    from trl import DPOTrainer

    from character.models import load_tokenizer

    tok = tokenizer or load_tokenizer(model_ref)
    # Arguments before the model: under ZeRO-3 they switch on partitioned loading (zero.Init).
    args = dpo_args(cfg, output_dir, run_name)
    tracking.configure(cfg.train, metrics_path.parent)
    model = load_policy_base(model_ref, cfg)
    health = HealthCallback(
        cfg.dpo.health,
        metrics_path,
        kind="dpo",
        beta=cfg.dpo.beta,
        chosen_tokens=mean_chosen_tokens(tok, train_rows, cfg.dpo.max_length),
    )
    train_ds = datasets.Dataset.from_list([trl_pair(r) for r in train_rows])
    eval_ds = datasets.Dataset.from_list([trl_pair(r) for r in eval_rows]) if eval_rows else None
    trainer = DPOTrainer(
        model=model,
        ref_model=None,  # with peft_config: the reference is the base with the adapter disabled
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tok,
        peft_config=lora_config(cfg.lora),
        callbacks=[health, CompletionMarker()],
    )
    tracking.point(trainer, metrics_path.parent)
    trained: Any = trainer.model
    trainable = sum(int(p.numel()) for p in trained.parameters() if p.requires_grad)
    if trainable == 0:  # trl#1311: a loss stuck at log 2 with zero margins
        from character.errors import ConfigError

        raise ConfigError(f"lora.target_modules = {cfg.lora.target_modules!r} leaves no trainable parameters")
    log.info(
        "DPO: %d train / %d held-out pairs, %s trainable parameters",
        len(train_ds),
        len(eval_ds or []),
        f"{trainable:,}",
    )
    return trainer, health


def merge_adapter(
    base_ref: str, adapter_dir: Path, out_dir: Path, *, probe: list[int] | None = None
) -> float:
    """Merge a saved adapter into a fresh fp32 copy of its base (exact) and save it to `out_dir` atomically.

    Returns the largest absolute logit difference between base+adapter and the merged model on `probe`
    token ids (0.0 when no probe is given): a merge that changes the model's outputs is a bug.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from character.atomic import atomic_dir
    from character.models import load_tokenizer, resolve_model

    base = AutoModelForCausalLM.from_pretrained(resolve_model(base_ref), dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=False).eval()
    gap = 0.0
    ref_logits = None
    ids = torch.tensor([probe]) if probe else None
    if ids is not None:
        with torch.inference_mode():
            ref_logits = peft_model(input_ids=ids).logits
    merged = peft_model.merge_and_unload()
    if ids is not None and ref_logits is not None:
        with torch.inference_mode():
            gap = float((merged(input_ids=ids).logits - ref_logits).abs().max())
    tok = load_tokenizer(base_ref)
    with atomic_dir(Path(out_dir)) as tmp:
        merged.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return gap
