"""One check of every path a command reads, before the command runs: one line, never a traceback.

`attach(root)` walks the built command tree and gives each parameter that names an input a check,
chosen by the parameter's name, so a command added later with a `--checkpoint` or `--dataset` option
is checked without a line of its own:

- checkpoints (`--checkpoint`, `--baseline`, `--candidate`, `--base-model`, `--teacher`, `--dpo`, ...):
  a value written as a path must be a model directory (config.json) or a PEFT adapter directory
  (adapter_config.json); names (registry entries, hub ids, `embedded`, served models) are left to the
  command, which resolves them with their own one-line errors;
- data files (`--dataset`, `--prompts`, `--probes`, `--matches`, `SRC`): an existing, non-empty UTF-8
  text file;
- config files (`--config`, `--env-file`, `config validate FILE`): an existing UTF-8 file (empty is a
  valid config);
- constitutions (`--persona` or `constitution show` given a .yaml path): an existing, non-empty UTF-8
  file;
- run directories (`--run`, `--resume` taking a path): an existing directory.

Usage problems exit 2 (ConfigError/UsageError). `constitution lint` is left alone: reporting a bad
file as a finding is its job.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from pathlib import Path
from typing import Any

from character.errors import ConfigError, UsageError

CHECKPOINT = {"checkpoint", "baseline", "candidate", "prompt_base", "base_model", "tuned_model", "dpo", "sft",
              "base", "model", "teacher", "student", "judge", "encoder"}  # fmt: skip
DATA = {"dataset", "prompts", "probes", "matches", "src"}
CONFIG = {"config", "env_file"}
RUN_DIR = {"run", "resume"}
# Positional arguments whose meaning depends on the command: (command path, parameter name) -> kind.
BY_COMMAND: dict[tuple[str, ...], str] = {
    ("constitution", "show", "name"): "constitution",
    ("constitution", "import", "file"): "data",
    ("config", "validate", "file"): "config",
}
SKIP_COMMANDS = {("constitution", "lint")}
SNIFF_BYTES = 64 * 1024

_MODEL_FIX = (
    "give a model directory, a PEFT adapter directory, a registry name (`character checkpoint list`) "
    "or `embedded`"
)


def looks_like_path(ref: str) -> bool:
    """A reference written as a path (the rule of `eval.target`: a hub id is `org/name`, one slash,
    no leading dot) or naming something on disk."""
    return (
        ref.startswith(("/", "./", "../", "~"))
        or ref.endswith("/")
        or ref.count("/") > 1
        or Path(ref).expanduser().exists()
    )


def _label(param: Any) -> str:
    opts = [o for o in getattr(param, "opts", []) if o.startswith("--")]
    return opts[0] if opts else (param.name or "argument").upper()


def text_problem(p: Path, *, allow_empty: bool = False) -> str | None:
    """Why `p` cannot be read as a text file, or None."""
    if not p.exists():
        return "does not exist"
    if p.is_dir():
        return "is a directory, not a file"
    try:
        with open(p, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    if not head and not allow_empty:
        return "is empty"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return "is not UTF-8 text (a binary file?)"
    if b"\x00" in head:
        return "is not UTF-8 text (a binary file?)"
    return None


def check_checkpoint(label: str, ref: str) -> None:
    if not isinstance(ref, str) or not ref or not looks_like_path(ref):
        return
    what = "checkpoint" if label == "--checkpoint" else label
    p = Path(ref).expanduser()
    if not p.exists():
        raise ConfigError(f"{what} '{ref}' does not exist: {_MODEL_FIX}")
    if not p.is_dir():
        raise ConfigError(f"{what} '{ref}' is a file, not a model directory: {_MODEL_FIX}")
    if not ((p / "config.json").exists() or (p / "adapter_config.json").exists()):
        raise ConfigError(
            f"{what} '{ref}' holds no config.json or adapter_config.json, so it is not a model or adapter "
            f"directory: {_MODEL_FIX}"
        )


def _checkpoint_value(label: str, value: Any) -> None:
    for v in value if isinstance(value, list | tuple) else [value]:
        if isinstance(v, str):
            lab, eq, rest = v.partition("=")  # `eval robustness -c LABEL=REF`
            check_checkpoint(label, rest if eq and lab.isidentifier() and not Path(v).exists() else v)


def _file(kind: str, label: str, value: Any) -> None:
    p = Path(value).expanduser()
    problem = text_problem(p, allow_empty=kind == "config")
    if problem:
        fix = {
            "data": "give an existing JSONL or text file",
            "config": "give an existing TOML, YAML or .env file",
            "constitution": "give a persona name (`character constitution list`) or a constitution .yaml",
        }[kind]
        raise UsageError(f"{label} {value} {problem}: {fix}")


def _run_dir(label: str, value: Any) -> None:
    p = Path(value).expanduser()
    if not p.exists():
        raise UsageError(
            f"{label} {value} does not exist: give an existing run directory (`character runs list`)"
        )
    if not p.is_dir():
        raise UsageError(f"{label} {value} is a file, not a run directory (`character runs list`)")


def kind_of(path: tuple[str, ...], param: Any) -> str | None:
    """Which check a parameter gets (None: none)."""
    name = param.name or ""
    if path[:2] in SKIP_COMMANDS:
        return None
    if (*path, name) in BY_COMMAND:
        return BY_COMMAND[(*path, name)]
    # The option's own name counts too: `--probes` may land in a parameter called `probes_file`.
    names = {
        name,
        *(o.lstrip("-").replace("-", "_") for o in getattr(param, "opts", []) if o.startswith("--")),
    }
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if annotation is bool:  # a flag (`constitution show --teacher`), not a reference
        return None
    is_path = annotation is Path
    if names & CHECKPOINT and not is_path:
        return "checkpoint"
    if names & DATA and is_path:
        return "data"
    if names & CONFIG and is_path:
        return "config"
    if names & RUN_DIR and is_path:
        return "run_dir"
    if "persona" in names:
        return "persona"
    return None


def check(kind: str, label: str, value: Any) -> None:
    """Raise the one-line error for a bad `value` of a parameter of `kind`."""
    if value is None or value == () or value == []:
        return
    if kind == "checkpoint":
        _checkpoint_value(label, value)
    elif kind == "run_dir":
        _run_dir(label, value)
    elif kind in ("persona", "constitution"):
        # A persona is a name; a constitution file is a .yaml path (`load_constitution`'s rule). Any
        # other path-like name is refused by the command without touching the filesystem.
        if isinstance(value, str) and value.endswith((".yaml", ".yml")):
            _file("constitution", label, value)
        elif kind == "persona" and isinstance(value, str) and ("/" in value or value.startswith((".", "~"))):
            # Never a file name to glob for (`--persona /etc/passwd` crashed in a run-dir search).
            raise UsageError(
                f"{label} {value!r} is neither a persona name nor a constitution file: give a name from "
                "`character constitution list` or a path ending in .yaml"
            )
    else:
        _file(kind, label, value)


def _callback(kind: str, label: str, inner: Callable[..., Any] | None) -> Callable[..., Any]:
    def cb(ctx: Any, param: Any, value: Any) -> Any:
        if not getattr(ctx, "resilient_parsing", False):  # shell completion parses without running
            check(kind, label, value)
        return inner(ctx, param, value) if inner is not None else value

    return cb


def attach(root: Any) -> None:
    """Give every input parameter of `root`'s tree its check (see the module doc)."""
    from character.commands.help_text import walk

    for path, cmd in walk(root):
        for p in cmd.params:
            kind = kind_of(tuple(path), p)
            if kind is not None:
                p.callback = _callback(kind, _label(p), p.callback)
