"""`character merge` (exact adapter merge) and `character export` (safetensors or GGUF for llama.cpp/Ollama)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def merge(
    ctx: typer.Context,
    persona: Annotated[str | None, typer.Option("--persona", help="Persona whose adapters to merge.")] = None,
    run: Annotated[
        Path | None,
        typer.Option(
            "--run",
            help="Run directory with dpo/adapter and sft/adapter. Default: the newest finished SFT run.",
        ),
    ] = None,
    dpo: Annotated[
        str | None,
        typer.Option("--dpo", help="DPO adapter: a directory or registry name (default: RUN/dpo/adapter)."),
    ] = None,
    sft: Annotated[
        str | None,
        typer.Option("--sft", help="SFT adapter: a directory or registry name (default: RUN/sft/adapter)."),
    ] = None,
    dpo_weight: Annotated[
        float | None, typer.Option("--dpo-weight", "-d", help="merge.dpo_weight (paper: 1.0)")
    ] = None,
    sft_weight: Annotated[
        float | None, typer.Option("--sft-weight", "-s", help="merge.sft_weight (paper: 0.25)")
    ] = None,
    base: Annotated[
        str | None,
        typer.Option("--base", help="Model the deltas are added to. Default: the run's models.student."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where the merged model goes. Default: RUN/merge/model."),
    ] = None,
    as_adapter: Annotated[
        bool | None,
        typer.Option("--as-adapter/--no-adapter", help="Also save one combined LoRA (rank r_dpo + r_sft)."),
    ] = None,
    suffix: Annotated[
        str | None, typer.Option("--suffix", help="name_suffix: {persona}_{suffix}_merged.")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="A TOML or YAML config file.")] = None,
) -> None:
    """Merge the DPO and SFT adapters into one full model, exactly: W = W_base + w_dpo·ΔW_dpo + w_sft·ΔW_sft.

    Each ΔW = (alpha/r)·B·A is computed on its own in float64 and added to the base weight; this is not
    PEFT's factor-wise `linear` combination (which scales updates by w² and adds cross terms). The result
    is a full safetensors model with tokenizer and chat template, written atomically, with merge.json
    recording the base, the adapters' sha256 and the weights; every touched matrix is read back and
    checked against the formula. --as-adapter also writes one LoRA equal to the same sum (factors
    stacked: rank r_dpo + r_sft), for vLLM/PEFT serving. Registered as {persona}[_{suffix}]_merged.

    Examples:
      character merge --persona remorseful
      character merge --run artifacts/runs/remorseful_x --sft-weight 0.5 --as-adapter
      character merge --persona remorseful --dpo path/to/dpo --sft path/to/sft --base embedded -o out/model
    """
    from character import registry
    from character.cli import console, options
    from character.commands.run_dirs import latest_run
    from character.errors import UsageError
    from character.runner import saved_config
    from character.stages import merge as merge_stage

    overrides = {
        "persona": persona,
        "name_suffix": suffix,
        "merge.dpo_weight": dpo_weight,
        "merge.sft_weight": sft_weight,
        "merge.as_adapter": as_adapter,
    }
    res = options(ctx).resolve(config=config, overrides=overrides)
    cfg = res.config
    if run is None and (dpo is None or sft is None):
        name = registry.checkpoint_name(cfg.persona, "sft", cfg.name_suffix or None)
        entry = registry.find(name)
        run = (
            Path(entry.run)
            if entry and entry.run
            else latest_run(cfg.persona, cfg.name_suffix, "sft/manifest.json")
        )
        if run is None:
            raise UsageError(
                f"no finished SFT run of '{cfg.persona}' found (registry name {name}): pass --run, or both --dpo "
                "and --sft"
            )
    if run is not None:
        if not run.exists():
            raise UsageError(f"--run {run} does not exist")
        saved = saved_config(run) or {}
        base = base or saved.get("models", {}).get("student")
        console.print(f"merging in {run}: dpo x {cfg.merge.dpo_weight}, sft x {cfg.merge.sft_weight}")
        m = merge_stage.run(cfg, run, progress=True, dpo=dpo, sft=sft, base=base, output=output)
        record, out = m.extra, m.outputs["model"]
    else:
        out_dir = output or merge_stage.default_output(cfg)
        record = merge_stage.merge_adapters(
            base=base or cfg.models.student,
            dpo=dpo or "",
            sft=sft or "",
            dpo_weight=cfg.merge.dpo_weight,
            sft_weight=cfg.merge.sft_weight,
            output=out_dir,
            adapter_output=out_dir.with_name(out_dir.name + "-adapter") if cfg.merge.as_adapter else None,
        )
        merge_stage.register_merged(cfg, out_dir, record, run_dir=None)
        out = str(out_dir)
    console.print(
        f"merged model: {out} ({record['touched_matrices']} matrices, max |error| {record['max_abs_error']:.2g}); "
        + ", ".join(f"{a['role']} {a['weight']} sha256 {a['sha256'][:12]}" for a in record["adapters"])
    )
    if "combined_adapter" in record:
        ca = record["combined_adapter"]
        console.print(f"combined adapter: {ca['path']} (rank {ca['rank']})")


def export(
    checkpoint: Annotated[
        str,
        typer.Option(
            "--checkpoint", "-c", help="A registry name, a model directory or an adapter directory."
        ),
    ],
    fmt: Annotated[str, typer.Option("--format", "-f", help="safetensors or gguf.")] = "safetensors",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Output directory (safetensors) or .gguf file. Default: next to the input."
        ),
    ] = None,
    dtype: Annotated[str, typer.Option("--dtype", help="GGUF tensor type: f16 (default) or f32.")] = "f16",
) -> None:
    """Export a checkpoint as a full safetensors model or as a GGUF file for llama.cpp / Ollama.

    An adapter is merged into its base first (exactly, weight 1). GGUF is written in pure Python with
    gguf-py (Llama-architecture models, f16 or f32, tokenizer and chat template embedded) and checked by
    reading it back. Quantise afterwards with llama.cpp if you want a smaller file:
      llama-quantize model.gguf model.Q4_K_M.gguf Q4_K_M
    Run it with `llama-cli -m model.gguf`, or in Ollama with a Modelfile holding `FROM ./model.gguf`.
    For architectures the writer does not cover, convert the safetensors export with llama.cpp:
      python llama.cpp/convert_hf_to_gguf.py EXPORT_DIR --outfile model.gguf --outtype f16

    Examples:
      character export --checkpoint remorseful_merged --format gguf -o remorseful.gguf
      character export --checkpoint artifacts/runs/remorseful_x/sft/adapter --format safetensors -o out/
    """
    from character import export as exporter
    from character.cli import console
    from character.errors import UsageError

    if fmt not in ("safetensors", "gguf"):
        raise UsageError(f"--format {fmt!r} is not supported; use safetensors or gguf")
    if fmt == "safetensors":
        out = exporter.export_safetensors(checkpoint, output)
        console.print(f"safetensors model: {out}")
        return
    if dtype not in ("f16", "f32"):
        raise UsageError(
            f"--dtype {dtype!r} is not supported for GGUF; use f16 or f32 (quantise with llama.cpp)"
        )
    out, info = exporter.export_gguf(checkpoint, output, dtype=dtype)
    console.print(
        f"gguf: {out} ({info['tensors']} tensors, {info['bytes'] / 1e6:.1f} MB, {info['arch']}, {dtype})"
    )


def register(app: typer.Typer) -> None:
    app.command("merge")(merge)
    app.command("export")(export)
