"""Every command's --help reads cleanly at 80 and 140 columns and shows an example that parses.

The command tree is walked, so a command added later is covered without touching this file. Checks on
the rendered page (plain text, as a terminal shows it):
- no stray fragment: a line broken early (the next line's first word would have fitted after it) in
  the middle of a sentence, which is what hard-wrapped docstrings look like after the terminal wraps
  them again;
- no lost text: every word of the help and of each option's help is on the page (rich markup used to
  eat `[sanity]`);
- examples whole: an example command never wraps (a long one is split with a shell continuation);
- every command has an example, and each example parses against the real command tree (a renamed
  option or command breaks this test instead of a user's first try).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from character.cli import app
from character.commands.help_text import command_words, is_example, walk
from character.errors import CharacterError

ROOT = Path(__file__).resolve().parents[2]
WIDTHS = (80, 140)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_BOX = "│╭╮╰╯─"


def _tree() -> Any:
    return typer.main.get_command(app)


def _commands() -> list[tuple[list[str], Any]]:
    return list(walk(_tree()))


def render(args: list[str], width: int, the_app: Any = app) -> str:
    r = CliRunner().invoke(the_app, [*args, "--help"], env={"COLUMNS": str(width), "TERMINAL_WIDTH": None})
    assert r.exit_code == 0, r.output
    return _ANSI.sub("", r.output)


def _first_text(line: str, start: int) -> int:
    m = re.compile(r"\S").search(line, start)
    return m.start() if m else -1


def stray_fragments(page: str, width: int) -> list[str]:
    """Lines that start with a lowercase word although it would have fitted on the line before,
    which ended mid-sentence: a line break the author's hard wrap put there, not the terminal."""
    out = []
    lines = page.split("\n")
    for a, b in zip(lines, lines[1:], strict=False):
        boxed = b.startswith("│")
        if boxed != a.startswith("│") or not b.strip(_BOX + " "):
            continue
        right = len(b.rstrip()) - 2 if boxed else width - 1  # where text must end (exclusive)
        xb = _first_text(b, 1 if boxed else 0)
        word = b[xb:].split()[0]
        if not word[0].islower() or is_example(b[xb:]):
            continue
        if boxed:
            # A continuation row of a panel cell (new rows start at column 2); `a` must have text
            # starting in the same column.
            if xb <= 2 or len(a) <= xb or a[xb - 1] != " " or a[xb] == " ":
                continue
        elif _first_text(a, 0) != xb:
            continue
        seg = a[xb:right].rstrip()
        if not seg or seg.endswith((".", ":", "!", "?", "│")):
            continue
        if xb + len(seg) + 1 + len(word) <= right:
            out.append(f"{seg!r} / {b.strip(_BOX + ' ')!r}")
    return out


def broken_examples(page: str, width: int) -> list[str]:
    """Example commands the terminal wrapped: a line that neither ends in a shell continuation nor is
    followed by a blank line, another example or a `#` note; and indented lines the terminal wrapped."""
    out = []
    lines = [ln for ln in page.split("\n") if not ln.startswith("│")]
    for i, ln in enumerate(lines[:-1]):
        shown = re.sub(r"^\s*Examples?:\s+", "", ln)  # an example inline after "Example:" counts too
        if not is_example(shown) and not (i and lines[i - 1].rstrip().endswith("\\") and ln.strip()):
            continue
        nxt = lines[i + 1].strip()
        if ln.rstrip().endswith("\\") or not nxt or is_example(nxt) or nxt.startswith("#"):
            continue
        out.append(f"{ln.strip()!r} then {nxt!r}")
    # Any indented (verbatim) line the terminal wrapped: the next line starts further left with a
    # word that did not fit after it.
    for a, b in zip(lines, lines[1:], strict=False):
        xa, xb = _first_text(a, 0), _first_text(b, 0)
        if xa >= 3 and 0 <= xb < xa and len(a.rstrip()) + 1 + len(b.split()[0]) > width - 1:
            out.append(f"{a.strip()!r} wrapped to {b.strip()!r}")
    return out


def _compact(s: str) -> str:
    return re.sub(rf"[\s{_BOX}]", "", s)


def lost_words(page: str, cmd: Any) -> list[str]:
    texts = [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params if not p.hidden]
    page_c = _compact(page)
    # Tidied help escapes "[" as "\\[" (plain text, not markup): compare what a reader should see.
    words = {w.replace("\\[", "[") for t in texts for w in t.partition("\f")[0].split()}
    return sorted(w for w in words if _compact(w) not in page_c)


def examples_of(help_text: str) -> list[str]:
    """Example commands in a (tidied) help text, continuation lines joined."""
    out, cur = [], ""
    for ln in help_text.split("\n"):
        s = ln.strip()
        if cur or is_example(s):
            cur += " " + s.rstrip("\\").strip()
            if not s.endswith("\\"):
                out.append(cur.strip())
                cur = ""
    return out


def parse_example(root: Any, example: str) -> list[str]:
    """Parse an example against the command tree without running it; returns the command path.
    A CharacterError from an input check (an example's placeholder path) is accepted: the words
    and options parsed."""
    argv = command_words(example)[1:]
    ctx = root.make_context("character", argv)
    cmd, path = root, []
    args = [*ctx._protected_args, *ctx.args]
    while hasattr(cmd, "commands"):
        name, sub, rest = cmd.resolve_command(ctx, args)
        path.append(name)
        try:
            ctx = sub.make_context(name, rest, parent=ctx)
        except CharacterError:
            return path
        cmd, args = sub, [*ctx._protected_args, *ctx.args]
    return path


@pytest.mark.parametrize("width", WIDTHS)
def test_every_help_page_reads_cleanly(width: int) -> None:
    problems = []
    commands = _commands()
    assert len(commands) > 40  # the walk really reaches the subcommands
    for path, cmd in commands:
        page = render(path, width)
        name = " ".join(["character", *path])
        problems += [f"{name}: stray fragment {f}" for f in stray_fragments(page, width)]
        problems += [f"{name}: wrapped example {e}" for e in broken_examples(page, width)]
        problems += [f"{name}: lost {w!r}" for w in lost_words(page, cmd)]
    assert not problems, "\n".join(problems)


def test_every_command_has_an_example_that_parses() -> None:
    root = _tree()
    problems = []
    for path, cmd in walk(root):
        if hasattr(cmd, "commands"):
            continue
        exs = examples_of(cmd.help or "")
        if not any(path_of(root, e) == path for e in exs):
            problems.append(f"character {' '.join(path)}: no example (add one to its docstring)")
    assert not problems, "\n".join(problems)


def path_of(root: Any, example: str) -> list[str] | str:
    try:
        return parse_example(root, example)
    except Exception as e:  # a usage error: unknown option, missing argument, bad value
        return f"{example!r} does not parse: {e}"


def test_all_examples_parse() -> None:
    root = _tree()
    bad = []
    for _path, cmd in walk(root):
        for ex in examples_of(cmd.help or ""):
            got = path_of(root, ex)
            if isinstance(got, str):
                bad.append(got)
    assert not bad, "\n".join(bad)


# --- the checks themselves fire on the failures they exist for -------------------------------------

_RAGGED = """Run the whole thing: every stage from the first to the last one, in order.

Smoke runs (smoke-small, then smoke-large) go first through the same code path and
hyperparameters, each in its own subfolder; any failure there stops before the full run spends
anything. A sanity probe ([sanity]: greedy replies) must pass.

Example: character pipeline remorseful --resume artifacts/runs/remorseful_20260101-120000 --until dpo
"""


def _ragged_app(tidied: bool) -> typer.Typer:
    from character.commands.help_text import tidy_tree

    class Root(typer.core.TyperGroup):
        def __init__(self, **kw: Any) -> None:
            super().__init__(**kw)
            if tidied:
                tidy_tree(self)

    a = typer.Typer(cls=Root, rich_markup_mode="rich")

    def go(x: int = typer.Option(1, help="A number.")) -> None:
        pass

    go.__doc__ = _RAGGED
    a.command("go")(go)
    a.command("other")(go)
    return a


@pytest.mark.parametrize("width", WIDTHS)
def test_checks_fire_on_hard_wrapped_help_and_pass_once_tidied(width: int) -> None:
    ragged = _ragged_app(tidied=False)
    page = render(["go"], width, ragged)
    assert stray_fragments(page, width), page
    assert broken_examples(page, width) or width == 140, page
    cmd = typer.main.get_command(ragged).commands["go"]  # type: ignore[attr-defined]
    assert "([sanity]:" in lost_words(page, cmd), page
    tidy = _ragged_app(tidied=True)
    page = render(["go"], width, tidy)
    cmd = typer.main.get_command(tidy).commands["go"]  # type: ignore[attr-defined]
    assert not stray_fragments(page, width) and not broken_examples(page, width), page
    assert not lost_words(page, cmd), page


def test_help_through_the_real_entry_point_at_80_columns(tmp_path: Path) -> None:
    env = {"COLUMNS": "80", "PATH": "/usr/bin:/bin", "CHARACTER_ARTIFACTS": str(tmp_path)}
    r = subprocess.run(
        [sys.executable, "-m", "character.cli", "pipeline", "--help"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    page = _ANSI.sub("", r.stdout)
    assert max(len(ln) for ln in page.split("\n")) <= 80
    assert not stray_fragments(page, 80) and not broken_examples(page, 80), page
    assert "character pipeline remorseful --scale demo --smoke none" in page
