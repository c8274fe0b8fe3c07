"""Help text that reads at any terminal width, for every command, including ones added later.

Docstrings in this project are hard-wrapped at ~110 columns. Typer's rich renderer keeps those line
breaks and then wraps again at the terminal's width, which leaves sentence fragments on lines of their
own ("...the same code path and" / "hyperparameters, each..."). It also reads `[sanity]` in a help
string as a style tag and drops it. `tidy_tree` rewrites the help of every command of the built command
tree once, before anything is rendered:

- prose paragraphs become one logical line each (the renderer wraps them to the width it has);
- list items (`- `, `* `, `1. `) keep their own lines; indented lines stay verbatim (shell lines
  longer than `EXAMPLE_WIDTH` are split like examples);
- a line beginning `character ...` is an example: it gets a paragraph of its own, a trailing
  `   (note)` becomes a `# note` line above it, and a command longer than `EXAMPLE_WIDTH` is split
  before an option with a shell line continuation, so it can be copied from an 80-column terminal;
- commands without an example get theirs from `examples.EXAMPLES` (a test asks every command for one);
- `[` is escaped, so help text is plain text, never rich markup.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from typing import Any

from rich.markup import escape

# 80 columns minus typer's one-column padding on each side minus the two-space example indent.
EXAMPLE_WIDTH = 76
CONTINUATION = "    "
_LIST_ITEM = re.compile(r"^([-*•]|\d+[.)])\s+\S")
_INLINE_EXAMPLE = re.compile(r"^(Examples?:)\s+(character\s.*)$")
_TRAILING_NOTE = re.compile(r"^(character\s.*?\S)\s{2,}\((.+)\)\s*$")
_TIDIED = "_character_help_tidied"


def is_example(line: str) -> bool:
    """A line that is a `character ...` command (what a user would paste into a shell)."""
    return line.strip().startswith("character ") or line.strip() == "character"


def _tokens(command: str) -> list[str]:
    """Shell words of `command`, quotes kept as written (so a split line pastes back identically)."""
    return re.findall(r"""(?:[^\s'"]+|'[^']*'|"[^"]*")+""", command)


def split_example(command: str, width: int = EXAMPLE_WIDTH) -> list[str]:
    """One example command as lines of at most `width` characters (when its words allow), split
    before an option (`--x value` stays together) and joined by a trailing ` \\`."""
    words = _tokens(command)
    command = " ".join(words)
    if len(command) <= width:
        return [command]
    units: list[str] = []
    for w in words:
        # An option keeps its value: `--scale demo` is never split.
        if units and not w.startswith("-") and units[-1].startswith("-") and " " not in units[-1]:
            units[-1] = f"{units[-1]} {w}"
        else:
            units.append(w)
    lines: list[str] = []
    cur = ""
    for u in units:
        if not cur:
            cur = (CONTINUATION if lines else "") + u
        elif len(cur) + 1 + len(u) + 2 > width:  # 2: room for the " \\" continuation mark
            lines.append(cur + " \\")
            cur = CONTINUATION + u
        else:
            cur = f"{cur} {u}"
    lines.append(cur)
    return lines


def _example_lines(line: str) -> list[str]:
    """An example line as it will be shown: an optional `# note` line, then the (split) command."""
    text = line.strip()
    note = _TRAILING_NOTE.match(text)
    out: list[str] = []
    if note:
        text = note.group(1)
        out.append(f"# {note.group(2)}")
    return out + split_example(text)


def _blocks(paragraph: str) -> Iterator[tuple[str, str]]:
    """(kind, text) pieces of one paragraph: kind is prose, item, verbatim or example."""
    cur_kind, cur = "", ""
    for raw in paragraph.split("\n"):
        line = raw.rstrip()
        inline = _INLINE_EXAMPLE.match(line)
        if inline:
            if cur:
                yield cur_kind, cur
            yield "prose", inline.group(1)
            yield "example", inline.group(2)
            cur_kind, cur = "", ""
            continue
        if is_example(line):
            kind = "example"
        elif line[:1].isspace():
            # An indented line continues a list item when it lines up with the item's text.
            if cur_kind == "item" and len(line) - len(line.lstrip()) >= 2 and not is_example(line):
                cur = f"{cur} {line.strip()}"
                continue
            kind = "verbatim"
        elif _LIST_ITEM.match(line):
            kind = "item"
        else:
            kind = "prose"
        if kind == "prose" and cur_kind in ("prose", "item"):
            cur = f"{cur} {line.strip()}"
            continue
        if cur:
            yield cur_kind, cur
        cur_kind, cur = kind, line
    if cur:
        yield cur_kind, cur


def tidy(text: str | None) -> str | None:
    """Help text (a cleaned docstring) rewritten to render cleanly at any width (see the module doc)."""
    if not text:
        return text
    head, sep, tail = text.partition("\f")  # click: what follows \f is never shown
    paragraphs: list[list[str]] = []
    for para in re.split(r"\n[ \t]*\n", head.strip("\n")):
        if not para.strip():
            continue
        if para.startswith("\b"):  # click's "do not rewrap" marker: keep the lines as they are
            paragraphs.append([escape(ln) for ln in para.strip("\b\n").split("\n")])
            continue
        out: list[str] = []
        prev_kind = ""
        for kind, block in _blocks(para):
            if kind == "example":
                if out and prev_kind != "example":
                    paragraphs.append(out)
                    out = []
                out.extend("  " + ln for ln in _example_lines(block))
            else:
                if prev_kind == "example" and out:
                    paragraphs.append(out)
                    out = []
                if kind == "verbatim" and len(block.strip()) > EXAMPLE_WIDTH:
                    # A long shell line (`python llama.cpp/convert_hf_to_gguf.py ...`): split it too.
                    indent = block[: len(block) - len(block.lstrip())]
                    out.extend(escape(indent + ln) for ln in split_example(block.strip()))
                else:
                    out.append(escape(block.rstrip()))
            prev_kind = kind
        if out:
            paragraphs.append(out)
    return "\n\n".join("\n".join(p) for p in paragraphs) + (sep + tail if sep else "")


SHELL_OPERATORS = {"|", ">", ">>", "<", "2>", "&&", "||", ";", "&"}


def command_words(example: str) -> list[str]:
    """The words of an example command up to the first shell operator (`> doctor.json`, `| jq`)."""
    words = shlex.split(example.strip().rstrip("\\"))
    cut = next((i for i, w in enumerate(words) if w in SHELL_OPERATORS), len(words))
    return words[:cut]


def has_example(text: str | None, path: list[str]) -> bool:
    """Whether `text` shows an example that runs the command at `path` (global options allowed)."""
    for line in (text or "").split("\n"):
        if not is_example(line):
            continue
        try:
            words = [w for w in command_words(line) if not w.startswith("-")]
        except ValueError:
            continue
        if words[1 : 1 + len(path)] == path:
            return True
    return False


def walk(cmd: Any, path: list[str] | None = None) -> Iterator[tuple[list[str], Any]]:
    """(path, command) for `cmd` and every command below it, groups before their commands."""
    path = path or []
    yield path, cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from walk(sub, [*path, name])


def tidy_tree(root: Any, examples: dict[str, list[str]] | None = None) -> None:
    """Tidy the help of `root` and every command under it, in place (once per built tree)."""
    if getattr(root, _TIDIED, False):
        return
    for path, cmd in walk(root):
        extra = (examples or {}).get(" ".join(path))
        if extra and not has_example(cmd.help, path):
            word = "Example:" if len(extra) == 1 else "Examples:"
            cmd.help = (cmd.help or "").rstrip() + f"\n\n{word}\n\n" + "\n".join(extra)
        cmd.help = tidy(cmd.help)
        if getattr(cmd, "short_help", None):
            cmd.short_help = escape(" ".join(cmd.short_help.split()))
        cmd.epilog = tidy(getattr(cmd, "epilog", None))
        for p in cmd.params:
            if getattr(p, "help", None):
                p.help = escape(p.help)
    setattr(root, _TIDIED, True)
