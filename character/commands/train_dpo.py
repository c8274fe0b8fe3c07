"""`character train dpo`: stage 1b on its own (the pipeline runner calls the same stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from character.commands import train_options as launch
from character.commands.run_dirs import (
    ConfigOpt,
    EpochsOpt,
    LrOpt,
    MaxLengthOpt,
    MaxStepsOpt,
    PersonaOpt,
    RankOpt,
    ScaleOpt,
    StudentOpt,
    find_dataset,
    suffix_opt,
)
from character.commands.train_cmd import train_app


@train_app.command("dpo")
def dpo(
    ctx: typer.Context,
    persona: PersonaOpt = None,
    dataset: Annotated[
        Path | None,
        typer.Option(
            "--dataset",
            help="Pairs JSONL (prompt/chosen/rejected message lists). Default: the newest run's distill/pairs.jsonl.",
        ),
    ] = None,
    run: Annotated[
        Path | None,
        typer.Option(
            "--run",
            help="Run directory (receives dpo/; its distill/pairs.jsonl is the default dataset). Default: the "
            "run the dataset belongs to, else a new one.",
        ),
    ] = None,
    student: StudentOpt = None,
    loss: Annotated[
        str | None, typer.Option("--loss", help="sigmoid (+ NLL on chosen) or ipo (dpo.loss).")
    ] = None,
    lr: LrOpt = None,
    beta: Annotated[float | None, typer.Option("--beta", help="dpo.beta (IPO tau with --loss ipo)")] = None,
    nll_weight: Annotated[
        float | None, typer.Option("--nll-weight", help="dpo.nll_weight (paper: 0.1)")
    ] = None,
    epochs: EpochsOpt = None,
    max_steps: MaxStepsOpt = None,
    max_length: MaxLengthOpt = None,
    rank: RankOpt = None,
    suffix: Annotated[str | None, suffix_opt("dpo")] = None,
    scale: ScaleOpt = None,
    config: ConfigOpt = None,
    num_processes: launch.NumProcessesOpt = None,
    accelerate_config: launch.AccelerateConfigOpt = None,
    num_machines: launch.NumMachinesOpt = None,
    machine_rank: launch.MachineRankOpt = None,
    main_process_ip: launch.MainIpOpt = None,
    main_process_port: launch.MainPortOpt = None,
    resume: launch.ResumeOpt = False,
    save_steps: launch.SaveStepsOpt = None,
    report_to: launch.ReportToOpt = None,
) -> None:
    """Train a DPO LoRA adapter on pairs, verify it from disk, and merge it for the next stage.

    TRL DPOTrainer + PEFT LoRA; the reference is the base model with the adapter disabled; loss sigmoid +
    NLL on chosen (dpo.nll_weight) or ipo; cosine schedule with warm-up; fp32 on CPU, bf16 on GPU.
    Every logged step goes to dpo/metrics.jsonl and the health gates stop a bad run at once (non-finite
    values; collapse: loss over dpo.health.max_loss_factor x its own start, entropy near ln(vocab), logits
    exactly 0, chosen replies less likely than under the reference, chosen NLL over a multiple of the
    base's; after warm-up: reward accuracy over a window, zero margins, flat loss). An aborted run exits
    1 and keeps its adapter only under dpo/aborted/ with REASON.txt. After saving, the adapter is reloaded
    from disk into a fresh base and its held-out loss and reward accuracy (pairs held out by prompt) must
    match the trainer's (dpo.verify_tolerance); a sanity probe ([sanity]: greedy replies and NLL on a
    fixed text vs the base) must pass; then it is merged into dpo/merged and registered as
    {persona}[_{suffix}]_dpo.

    Example: character train dpo --persona remorseful --dataset artifacts/runs/remorseful_x/distill/pairs.jsonl
    """
    from character.cli import console, options
    from character.stages import dpo as dpo_stage

    overrides = {
        "persona": persona,
        "name_suffix": suffix,
        "models.student": student,
        "dpo.loss": loss,
        "dpo.learning_rate": lr,
        "dpo.beta": beta,
        "dpo.nll_weight": nll_weight,
        "dpo.epochs": epochs,
        "dpo.max_steps": max_steps,
        "dpo.max_length": max_length,
        "lora.r": rank,
        **launch.train_overrides(ctx.params),  # the launch options above, by their parameter names
    }
    res = options(ctx).resolve(scale=scale, config=config, overrides=overrides)
    cfg = res.config
    dataset = find_dataset(dataset, run, cfg, "distill/pairs.jsonl", "character generate dpo")
    run_dir = launch.open_training_run(run, dataset, "distill", cfg, res.sources)
    console.print(f"DPO for '{cfg.persona}' on {dataset} in {run_dir} (config hash {res.hash()})")
    m = dpo_stage.run(cfg, Path(run_dir), progress=True, dataset=dataset)
    c, mt = m.counts, m.metrics
    console.print(
        f"trained {c['steps']} steps on {c['train_pairs']} pairs ({c['dropped_prompt_too_long']} dropped: prompt "
        f"reaches dpo.max_length); held-out {c['heldout_pairs']} pairs: loss {mt['measured']['eval_loss']:.4f}, "
        f"reward accuracy {mt['measured']['eval_rewards/accuracies']:.2f} (verified from disk)"
    )
    console.print(
        f"checkpoint {m.extra['checkpoint']}: adapter {m.outputs['adapter']}, merged {m.outputs['merged']}"
    )
