"""What DPO and SFT training share: the LoRA config, precision and the trainer arguments that must
always be set (NaN filtering off, no implicit reporting, seeded, cosine with warm-up).
"""

from __future__ import annotations

from typing import Any

from character.config import LoraSettings
from character.models import pick_device


def lora_config(settings: LoraSettings) -> Any:
    from peft import LoraConfig

    # all-linear on Llama covers q,k,v,o,gate,up,down and never lm_head (TRL refuses lm_head targets).
    return LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )


def precision_kwargs(device_pref: str) -> dict[str, Any]:
    """bf16 on CUDA, fp32 on CPU; never fp16 (overflow NaNs, trl#878)."""
    dev = pick_device(device_pref)
    if dev == "cuda":
        return {"bf16": True, "fp16": False, "use_cpu": False}
    return {"bf16": False, "fp16": False, "use_cpu": True}


def base_training_kwargs(
    *,
    output_dir: str,
    device_pref: str,
    seed: int,
    learning_rate: float,
    batch_size: int,
    micro_batch_size: int,
    epochs: float,
    max_steps: int,
    warmup_ratio: float,
    logging_steps: int,
) -> dict[str, Any]:
    """Keyword arguments for trl's DPOConfig/SFTConfig that both stages need."""
    return {
        "output_dir": output_dir,
        "learning_rate": learning_rate,
        "per_device_train_batch_size": micro_batch_size,
        "per_device_eval_batch_size": micro_batch_size,
        "gradient_accumulation_steps": max(1, batch_size // micro_batch_size),
        "num_train_epochs": epochs,
        "max_steps": max_steps,
        "lr_scheduler_type": "cosine",
        # transformers 5 folds warmup_ratio into warmup_steps: a float in [0, 1) is a ratio.
        "warmup_steps": float(warmup_ratio) if warmup_ratio < 1 else int(warmup_ratio),
        "logging_steps": logging_steps,
        # Without this a NaN step loss is logged as the running average and looks healthy.
        "logging_nan_inf_filter": False,
        "save_strategy": "no",
        "report_to": "none",
        "seed": seed,
        "data_seed": seed,
        "activation_checkpointing": False,  # was gradient_checkpointing (renamed in transformers 5)
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        **precision_kwargs(device_pref),
    }


def stage_training_kwargs(cfg: Any, section: Any, output_dir: str) -> dict[str, Any]:
    """`base_training_kwargs` for a stage section (cfg.dpo or cfg.sft): both carry the same fields."""
    return base_training_kwargs(
        output_dir=output_dir,
        device_pref=cfg.backend.device,
        seed=cfg.seed,
        learning_rate=section.learning_rate,
        batch_size=section.batch_size,
        micro_batch_size=section.micro_batch_size,
        epochs=section.epochs,
        max_steps=section.max_steps,
        warmup_ratio=section.warmup_ratio,
        logging_steps=section.logging_steps,
    )
