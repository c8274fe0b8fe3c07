"""`character info`, `character config show|validate`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from character.config_layers import field_help, get_value, leaf_keys, resolve
from character.errors import ConfigError

config_app = typer.Typer(
    help="Show and check configuration (presets, files, environment, flags).", no_args_is_help=True
)


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if v == "":
        return '""'
    return str(v)


def info(
    ctx: typer.Context,
    scale: Annotated[
        str | None, typer.Option("--scale", help="Also apply this preset (smoke-small, demo, ...).")
    ] = None,
    show_help: Annotated[bool, typer.Option("--help-text", help="Add each setting's help text.")] = False,
) -> None:
    """Every setting: its current value, the paper's value, and where each comes from.

    The paper column is the value of Open Character Training (arXiv 2511.01689) and its code, with its
    source ("=" when the current value is the paper's, "-" when the paper has no such setting).
    Runs offline and without a GPU. `character --paper-scale info` shows the paper values as current.
    """
    from character.cli import console, options
    from character.paper_values import DEVIATIONS, paper_value

    res = options(ctx).resolve(scale=scale)
    table = Table(title=f"character settings (config hash {res.hash()})", show_lines=False)
    table.add_column("setting")
    table.add_column("value")
    table.add_column("paper")
    table.add_column("source")
    table.add_column("paper source")
    if show_help:
        table.add_column("help")
    for key in leaf_keys():
        cur, pap = get_value(res.config, key), paper_value(key)
        src = res.sources[key]
        if pap is None:
            row = [key, _fmt(cur), "-", src, "-"]
        else:
            why = f"; preset differs: {DEVIATIONS[key]}" if key in DEVIATIONS else ""
            row = [key, _fmt(cur), "=" if pap.value == cur else _fmt(pap.value), src, pap.source + why]
        if show_help:
            row.append(field_help(key))
        table.add_row(*row, style=None if src == "default" else "bold")
    console.print(table)


def show(
    ctx: typer.Context,
    scale: Annotated[str | None, typer.Option("--scale", help="Apply this preset.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="A TOML or YAML config file.")] = None,
    sources: Annotated[
        bool, typer.Option("--sources", help="Add a comment with each non-default source.")
    ] = False,
) -> None:
    """Print the resolved config as TOML (paste it into a file for --config)."""
    from character.cli import console, options

    res = options(ctx).resolve(scale=scale, config=config)
    console.print(
        f"# config hash {res.hash()}; layers: {' < '.join(res.layers)}", markup=False, highlight=False
    )
    if sources:
        for k, s in res.overridden().items():
            console.print(f"# {k} <- {s}", markup=False, highlight=False)
    console.print(res.to_toml(), markup=False, highlight=False)


def validate(file: Annotated[Path, typer.Argument(help="TOML or YAML config file to check.")]) -> None:
    """Check a config file: unknown keys, wrong types and out-of-range values are errors."""
    from character.cli import console

    if not file.exists():
        raise ConfigError(f"config file '{file}' does not exist")
    res = resolve(config_file=file, environ={})
    n = sum(1 for s in res.sources.values() if s.startswith("file:"))
    console.print(f"{file}: valid ({n} settings; config hash {res.hash()})")


def register(app: typer.Typer) -> None:
    app.command("info")(info)
    config_app.command("show")(show)
    config_app.command("validate")(validate)
    app.add_typer(config_app, name="config")
