"""`character train sft`: stage 3 on its own (the pipeline runner calls the same stage)."""

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


@train_app.command("sft")
def sft(
    ctx: typer.Context,
    persona: PersonaOpt = None,
    dataset: Annotated[
        Path | None,
        typer.Option(
            "--dataset",
            help="Introspection JSONL ({id, kind, variant, messages} rows). Default: the newest run's "
            "introspect/introspection.jsonl.",
        ),
    ] = None,
    run: Annotated[
        Path | None,
        typer.Option("--run", help="Run directory (receives sft/). Default: the run the dataset belongs to."),
    ] = None,
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            help="merged-dpo (train on RUN/dpo/merged, the paper's path) or base (train on models.student).",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", help="Train on this model instead (a path or registry name); overrides --base."
        ),
    ] = None,
    student: StudentOpt = None,
    lr: LrOpt = None,
    epochs: EpochsOpt = None,
    max_steps: MaxStepsOpt = None,
    max_length: MaxLengthOpt = None,
    rank: RankOpt = None,
    suffix: Annotated[str | None, suffix_opt("sft")] = None,
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
    """Train the SFT LoRA on introspection data, verify it from disk, and register it.

    TRL SFTTrainer + PEFT LoRA on the DPO-merged model (sft.base = merged-dpo, the paper's path) or the
    base model. The loss covers assistant tokens only: every assistant turn of a self-interaction is a
    target (content + end-of-turn token); the system prompt and every user turn are masked. Rows longer
    than sft.max_length are cut after the last whole assistant turn that fits, or dropped, and counted.
    Health gates stop a bad run at once (non-finite loss; collapse: loss over sft.health.max_loss_factor x
    the step-1 loss, entropy near ln(vocab); after warm-up: flat loss); an aborted run exits 1 and keeps
    its adapter only under sft/aborted/ with REASON.txt. After saving, the adapter is reloaded from disk
    and its held-out loss (rows held out by prompt) must match the trainer's (sft.verify_tolerance), a
    sanity probe ([sanity]) must pass against its base, then it becomes sft/adapter and is registered as
    {persona}[_{suffix}]_sft.

    Example: character train sft --persona remorseful --dataset artifacts/runs/remorseful_x/introspect/introspection.jsonl
    """
    from character.cli import console, options
    from character.stages import sft as sft_stage

    overrides = {
        "persona": persona,
        "name_suffix": suffix,
        "models.student": student,
        "sft.base": base,
        "sft.learning_rate": lr,
        "sft.epochs": epochs,
        "sft.max_steps": max_steps,
        "sft.max_length": max_length,
        "lora.r": rank,
        **launch.train_overrides(ctx.params),  # the launch options above, by their parameter names
    }
    res = options(ctx).resolve(scale=scale, config=config, overrides=overrides)
    cfg = res.config
    dataset = find_dataset(
        dataset, run, cfg, "introspect/introspection.jsonl", "character generate introspection"
    )
    run_dir = launch.open_training_run(run, dataset, "introspect", cfg, res.sources)
    console.print(f"SFT for '{cfg.persona}' on {dataset} in {run_dir} (config hash {res.hash()})")
    m = sft_stage.run(cfg, Path(run_dir), progress=True, dataset=dataset, model=model)
    c, mt = m.counts, m.metrics
    console.print(
        f"trained {mt['steps']} steps on {c['train_rows']} rows ({c['truncated']} cut to whole turns, "
        f"{sum(m.dropped.values())} dropped); held-out loss {mt['measured_eval_loss']:.4f} "
        f"(base {mt['base_eval_loss']:.4f}, trainer claimed {mt['claimed_eval_loss']:.4f}; verified from disk)"
    )
    console.print(f"checkpoint {m.extra['checkpoint_name']}: adapter {m.outputs['adapter']}")
