"""`character constitution list | show NAME | lint [NAME|FILE ...] | new NAME | import FILE`.

A NAME is a persona under constitutions/hand-written/ (lowercase letters, digits, '-' and '_' only,
so it can never point outside that folder); a FILE is a path ending in .yaml or .yml.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

constitution_app = typer.Typer(
    help="Personas: list, show, lint, create and import constitutions.", no_args_is_help=True
)


def _out(line: str) -> None:
    from character.cli import console

    console.print(line, markup=False, highlight=False, soft_wrap=True)


def _target(arg: str) -> Path:
    """A .yaml/.yml path as given, otherwise a validated persona name's file (checked before any I/O)."""
    from character.constitutions import constitution_path, list_constitutions
    from character.errors import UsageError

    if arg.endswith((".yaml", ".yml")):
        p = Path(arg)
        if not p.is_file():
            raise UsageError(f"constitution file {arg} does not exist")
        return p
    p = constitution_path(arg)  # raises on names like ../../etc/passwd before touching the disk
    if not p.is_file():
        known = ", ".join(list_constitutions()) or "none"
        raise UsageError(
            f"no constitution named '{arg}' (known: {known}); create it with `character constitution new {arg}`"
        )
    return p


@constitution_app.command("list")
def list_cmd() -> None:
    """The shipped and user-written personas, with their size and lint status."""
    from character.cli import console
    from character.constitutions import constitution_path, lint_file, list_constitutions

    t = Table(title="constitutions (constitutions/hand-written/)")
    for col in ("name", "traits", "questions", "markers", "characters", "lint"):
        t.add_column(col, justify="right" if col not in ("name", "lint") else "left")
    for name in list_constitutions():
        c, findings = lint_file(constitution_path(name))
        errors = sum(f.severity == "error" for f in findings)
        warnings = len(findings) - errors
        status = "ok" if not findings else f"{errors} error(s), {warnings} warning(s)"
        if c is None:
            t.add_row(name, "-", "-", "-", "-", status)
        else:
            t.add_row(
                name,
                str(len(c.traits)),
                str(len(c.questions())),
                str(len(c.markers)),
                f"{len(c.text()):,}",
                status,
            )
    console.print(t)


@constitution_app.command("show")
def show_cmd(
    name: Annotated[str, typer.Argument(help="Persona name or path to a .yaml file.")],
    teacher: Annotated[
        bool,
        typer.Option("--teacher", help="Print only the numbered traits, exactly as the teacher reads them."),
    ] = False,
) -> None:
    """Print a constitution: description, numbered traits with their questions, markers, opposites."""
    from character.constitutions import parse_constitution, read_constitution_text

    path = _target(name)
    c = parse_constitution(read_constitution_text(path), str(path))
    if teacher:
        _out(c.text())
        return
    _out(f"{c.name}  ({path})")
    if c.description:
        _out(f"  {c.description}")
    for i, t in enumerate(c.traits, 1):
        _out(f"\n{i}. {t.trait}")
        for q in t.questions:
            _out(f"     - {q}")
    _out("\nmarkers:   " + ", ".join(f'"{m}"' for m in c.markers))
    _out("opposites: " + ", ".join(c.opposites))
    if c.cues:
        _out("cues:      " + " | ".join(c.cues))


@constitution_app.command("lint")
def lint_cmd(
    targets: Annotated[
        list[str] | None, typer.Argument(help="Persona names or .yaml files (default: every persona).")
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Fail on warnings too.")] = False,
) -> None:
    """Check constitutions for what makes persona training fail.

    Rules: C001 too short (< 1,000 characters of traits), C002 too few markers, C003 abstract
    directive without a quoted example ("be witty"), C004 a line that teaches refusing, C005
    duplicate or near-duplicate traits, C006 fewer than 5 questions for a trait, C007 empty marker,
    C008 no quoted phrase or structural habit (warning), C009 marker never quoted in a trait
    (warning), C010 overlong marker (warning), C011 duplicate question (warning), C012 no opposites
    (warning), C013 no description (warning), C014 opposite not in the trait vocabulary (warning),
    C000 invalid file. Exit 0 when clean, 1 with errors (or with warnings under --strict).
    """
    from character.constitutions import constitution_path, lint_file, list_constitutions

    paths = [_target(t) for t in targets] if targets else [constitution_path(n) for n in list_constitutions()]
    n_err = n_warn = 0
    for p in paths:
        _c, findings = lint_file(p)
        for f in findings:
            _out(f.format(str(p)))
        n_err += sum(f.severity == "error" for f in findings)
        n_warn += sum(f.severity == "warning" for f in findings)
    verdict = "clean" if not (n_err or n_warn) else f"{n_err} error(s), {n_warn} warning(s)"
    _out(f"linted {len(paths)} constitution(s): {verdict}")
    if n_err or (strict and n_warn):
        raise typer.Exit(1)


@constitution_app.command("new")
def new_cmd(
    name: Annotated[str, typer.Argument(help="Persona name: lowercase letters, digits, '-' or '_'.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented skeleton to constitutions/hand-written/NAME.yaml, ready to fill in and lint."""
    from character.atomic import atomic_write_text
    from character.constitution_io import skeleton
    from character.constitutions import constitution_path
    from character.errors import UsageError

    path = constitution_path(name)
    if path.exists() and not force:
        raise UsageError(f"{path} already exists: pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, skeleton(name))
    _out(f"wrote {path}; fill it in, then run `character constitution lint {name} --strict`")


@constitution_app.command("import")
def import_cmd(
    file: Annotated[
        Path, typer.Argument(help="A JSON list of {trait, questions}, its JSONL form, or plain text.")
    ],
    name: Annotated[str, typer.Option("--name", help="Persona name for the new constitution.")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format", help="auto (JSON if it starts with [ or {), json, or text (one trait per line)."
        ),
    ] = "auto",
    description: Annotated[str, typer.Option("--description", help="One-line description to store.")] = "",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where to write (default constitutions/hand-written/NAME.yaml)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Import a constitution from the reference format or plain text, write it as YAML and lint it.

    Markers are seeded from the quoted phrases in the traits; add questions (>= 5 per trait) by hand
    or with `character generate prompts --persona NAME`.
    """
    from character.constitution_io import import_constitution, save_constitution
    from character.constitutions import (
        check_name,
        constitution_path,
        lint_constitution,
        read_constitution_text,
    )
    from character.errors import UsageError

    check_name(name)
    if not file.is_file():
        raise UsageError(f"import file {file} does not exist")
    c = import_constitution(
        read_constitution_text(file), name, fmt=fmt, source=str(file), description=description
    )
    path = save_constitution(c, output or constitution_path(name), force=force)
    _out(f"wrote {path}: {len(c.traits)} traits, {len(c.questions())} questions, {len(c.markers)} markers")
    findings = lint_constitution(c, path.read_text())
    for f in findings:
        _out(f.format(str(path)))
    if findings:
        _out(f"fix the findings above, then run `character constitution lint {path} --strict`")


def register(app: typer.Typer) -> None:
    app.add_typer(constitution_app, name="constitution")
