"""`character info`, `character config show|validate`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from character.config_layers import Resolved, field_help, get_value, leaf_keys, resolve
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
        if key.startswith("roles.") and get_value(res.config, key) is None:
            continue  # inherited from [backend]: the roles table below shows the effective value
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
    console.print(roles_table(res))


def roles_table(res: Resolved) -> Table:
    """Each role's effective engine: value and where it comes from (its own key, or [backend]'s)."""
    from character.backends.roles import ROLES, role_rows

    table = Table(title="roles: each role's engine (roles.<role> settings over backend.*)")
    for col in ("role", "setting", "value", "source"):
        table.add_column(col)
    relevant = {
        "hf": {"kind", "gpus"},
        "openai": {"kind", "base_url", "provider", "model", "api_key_env"},
        "vllm": {"kind", "port", "model", "gpus"},
    }
    for role in ROLES:
        rows = role_rows(res, role)
        kind = str(rows[0][1])
        for f, value, src in rows:
            inherited = src.startswith("backend.")
            if f in relevant.get(kind, set()) or not inherited:
                label = "(auto)" if f == "port" and value is None else _fmt(value)
                table.add_row(role, f, label, src, style=None if inherited else "bold")
    return table


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
        for line in roles_lines(res):
            console.print(f"# {line}", markup=False, highlight=False, soft_wrap=True)
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


def roles_lines(res: Resolved) -> list[str]:
    """One line per role: its engine and the settings it sets itself, with their sources."""
    from character.backends.roles import ROLES, backend_for, role_rows

    out = []
    for role in ROLES:
        b = backend_for(res.config, role)
        where = (
            b.base_url if b.kind == "openai" else f"port {b.port or 'auto'}" if b.kind == "vllm" else b.device
        )
        own = [f"{f} <- {src}" for f, _, src in role_rows(res, role) if not src.startswith("backend.")]
        out.append(
            f"role {role}: {b.kind} ({where})" + (f"; {', '.join(own)}" if own else "; all from [backend]")
        )
    return out
