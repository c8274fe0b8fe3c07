"""What DPO and SFT training share: the LoRA config, precision, the base model in training form (QLoRA
included) and the trainer arguments that must always be set (NaN filtering off, seeded, cosine with
warm-up, resumable checkpoints, the configured batch as the global batch, the chosen trackers).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from character.config import LoraSettings, TrainConfig
from character.errors import ConfigError
from character.models import pick_device
from character.training import distributed
from character.training.tracking import check_trackers

log = logging.getLogger(__name__)


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


def precision_kwargs(device_pref: str, precision: str = "auto") -> dict[str, Any]:
    """bf16 on CUDA, fp32 on CPU unless `precision` says otherwise; never fp16 (overflow NaNs, trl#878).

    bf16 on the CPU is autocast: matrix products run in bf16 (AMX/AVX512-BF16 make them several times
    faster), while weights, gradients and the optimizer state stay fp32 (`train.precision`)."""
    dev = pick_device(device_pref)
    bf16 = precision == "bf16" or (precision == "auto" and dev == "cuda")
    return {"bf16": bf16, "fp16": False, "use_cpu": dev != "cuda"}


def accumulation_steps(
    batch_size: int, micro_batch_size: int, world_size: int, *, key: str = "batch_size"
) -> int:
    """Steps to accumulate so that micro x processes x steps equals the configured (global) batch.

    A batch that does not divide is refused: rounding would silently train with another batch size.
    """
    per_step = micro_batch_size * world_size
    if batch_size % per_step:
        raise ConfigError(
            f"{key} = {batch_size} is not a multiple of micro_batch_size ({micro_batch_size}) x "
            f"{world_size} training process(es) = {per_step}: the configured batch is the global batch; "
            f"set {key} to a multiple of {per_step} or change the micro batch / train.num_processes"
        )
    return batch_size // per_step


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
    world_size: int = 1,
    save_steps: int = 50,
    save_total_limit: int = 2,
    report_to: Sequence[str] | None = None,
    run_name: str = "",
    project: str = "character",
    batch_key: str = "batch_size",
    lr_scheduler: str = "cosine",
    min_lr_rate: float = 0.1,
    adam_beta2: float = 0.999,
    precision: str = "auto",
) -> dict[str, Any]:
    """Keyword arguments for trl's DPOConfig/SFTConfig that both stages need.

    `batch_size` is the global batch: accumulation divides it by micro batch x `world_size`.
    Checkpoints (adapter, optimizer, scheduler, RNG) go to `output_dir/checkpoint-N` every `save_steps`.
    """
    trackers = [t for t in (report_to or []) if t != "none"]
    return {
        "output_dir": output_dir,
        "learning_rate": learning_rate,
        "per_device_train_batch_size": micro_batch_size,
        "per_device_eval_batch_size": micro_batch_size,
        "gradient_accumulation_steps": accumulation_steps(
            batch_size, micro_batch_size, world_size, key=batch_key
        ),
        "num_train_epochs": epochs,
        "max_steps": max_steps,
        "lr_scheduler_type": lr_scheduler,
        # The paper's schedule (OpenRLHF's cosine_with_min_lr) ends at min_lr_rate x the peak, not 0.
        **(
            {"lr_scheduler_kwargs": {"min_lr_rate": min_lr_rate}}
            if lr_scheduler == "cosine_with_min_lr"
            else {}
        ),
        "adam_beta2": adam_beta2,
        # transformers 5 folds warmup_ratio into warmup_steps: a float in [0, 1) is a ratio.
        "warmup_steps": float(warmup_ratio) if warmup_ratio < 1 else int(warmup_ratio),
        "logging_steps": logging_steps,
        # Without this a NaN step loss is logged as the running average and looks healthy.
        "logging_nan_inf_filter": False,
        "save_strategy": "steps",
        "save_steps": save_steps,
        "save_total_limit": save_total_limit,
        "report_to": trackers or "none",
        **({"run_name": run_name} if run_name else {}),
        "project": project,  # trackio's project (wandb reads WANDB_PROJECT: `tracking.configure`)
        "seed": seed,
        "data_seed": seed,
        "activation_checkpointing": False,  # was gradient_checkpointing (renamed in transformers 5)
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        **precision_kwargs(device_pref, precision),
    }


def stage_training_kwargs(cfg: Any, section: Any, output_dir: str, *, run_name: str = "") -> dict[str, Any]:
    """`base_training_kwargs` for a stage section (cfg.dpo or cfg.sft): both carry the same fields."""
    train: TrainConfig = cfg.train
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
        world_size=distributed.world_size(),
        save_steps=train.save_steps,
        save_total_limit=train.save_total_limit,
        report_to=check_trackers(train.report_to),
        project="character",
        run_name=run_name,
        batch_key=f"{'dpo' if section is cfg.dpo else 'sft'}.batch_size",
        lr_scheduler=section.lr_scheduler,
        min_lr_rate=section.min_lr_rate,
        adam_beta2=section.adam_beta2,
        precision=train.precision,
    )


def one_process_one_device(args: Any) -> None:
    """Never let transformers wrap the model in DataParallel (n_gpu > 1 without a launcher).

    DataParallel multiplies the batch by the GPU count behind our back and gives no speed-up worth
    having next to DDP; without a launcher we train on the first visible GPU and say how to use all.
    """
    if distributed.under_launcher():
        return
    n = args.n_gpu  # runs transformers' device set-up
    if n > 1:
        log.warning(
            "%d GPUs are visible but training runs in one process: using only cuda:0. To train on all of "
            "them, set train.num_processes = %d (or --num-processes %d)",
            n,
            n,
            n,
        )
        # transformers reads this private counter to decide on DataParallel; there is no public switch.
        args._n_gpu = 1


def quantization_config(settings: LoraSettings, device_pref: str) -> Any:
    """A BitsAndBytesConfig for QLoRA, or None; a clear error where bitsandbytes cannot run."""
    if settings.quantize == "none":
        return None
    if pick_device(device_pref) != "cuda":
        raise ConfigError(
            f"lora.quantize = '{settings.quantize}' needs a CUDA GPU (bitsandbytes), and this machine trains on "
            "the CPU: set lora.quantize = 'none'"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(
            f"lora.quantize = '{settings.quantize}' needs the bitsandbytes package: make setup GPU=1 "
            "(pip install 'character[gpu]'), or set lora.quantize = 'none'"
        )
    import torch
    from transformers import BitsAndBytesConfig

    if settings.quantize == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    # The QLoRA paper's recipe: NF4 with double quantization, bf16 compute.
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def load_training_model(model_ref: str, lora: LoraSettings, device_pref: str) -> Any:
    """The base model, fresh from disk, in training form: fp32 on CPU, bf16 on CUDA, or 4/8-bit for QLoRA.

    A quantized base is placed on this process's GPU (its local rank); an unquantized one is moved by
    the trainer.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from character.models import dtype_for, resolve_model

    dev = pick_device(device_pref)
    quant = quantization_config(lora, device_pref)
    kwargs: dict[str, Any] = {"dtype": dtype_for(dev)}
    if quant is not None:
        kwargs |= {"quantization_config": quant, "device_map": {"": distributed.local_rank()}}
    try:
        model = AutoModelForCausalLM.from_pretrained(resolve_model(model_ref), **kwargs)
    except OSError as e:
        raise ConfigError(
            f"cannot load model '{model_ref}' offline: {str(e).splitlines()[0]}; give a local path or a cached hub id"
        ) from e
    torch.set_grad_enabled(True)
    return model


def check_saved_adapter(adapter_dir: Path) -> None:
    """A saved adapter must hold real LoRA weights: ZeRO-3 without a gather writes empty tensors.

    Raises VerificationError naming the file and the first empty or all-zero LoRA-B-and-A pair.
    """
    from safetensors import safe_open

    from character.errors import VerificationError

    files = sorted(Path(adapter_dir).glob("adapter_model*.safetensors"))
    if not files:
        raise VerificationError(
            f"{adapter_dir} holds no adapter_model.safetensors: the adapter was not saved"
        )
    n_lora = 0
    any_nonzero = False
    for f in files:
        with safe_open(str(f), framework="pt") as h:
            for key in h.keys():  # noqa: SIM118 - safe_open handles are not mappings
                if "lora_" not in key:
                    continue
                t = h.get_tensor(key)
                n_lora += 1
                if t.numel() == 0:
                    raise VerificationError(
                        f"{f.name}: LoRA tensor {key} is empty (shape {tuple(t.shape)}): the weights were saved "
                        "without gathering them (ZeRO-3); save through trainer.save_model()"
                    )
                # LoRA B starts at zero and may stay so after very few steps; A never does (random init).
                if "lora_A" in key and not bool(t.any()):
                    raise VerificationError(
                        f"{f.name}: LoRA tensor {key} is all zeros: the saved adapter is not the trained one"
                    )
                any_nonzero = any_nonzero or bool(t.any())
    if n_lora == 0 or not any_nonzero:
        raise VerificationError(f"{adapter_dir} holds no non-zero LoRA tensors: the adapter is empty")


def save_trained_adapter(trainer: Any, tokenizer: Any, dest: Path, *, check: bool = True) -> Path:
    """Save the trained adapter to `dest` atomically, from every process of a launch.

    `trainer.save_model()` is the one call that gathers ZeRO-3-partitioned weights (every process must
    call it; only the main one writes). The main process then checks the adapter holds real LoRA
    tensors (`check_saved_adapter`) and renames it into place.
    """
    import shutil

    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.partial")
    distributed.on_main(lambda: shutil.rmtree(tmp, ignore_errors=True))
    trainer.save_model(str(tmp))

    def finish() -> Path:
        try:
            tokenizer.save_pretrained(tmp)
            (tmp / "training_args.bin").unlink(
                missing_ok=True
            )  # pickled trainer args: not part of an adapter
            if check:
                check_saved_adapter(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
        return dest

    return distributed.on_main(finish)
