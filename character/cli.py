"""The `character` command line: thin commands that resolve the config and call a stage or the runner.

The boundary is here: a `CharacterError` becomes one line on stderr and exit 2 (usage/config) or 1
(runtime); `CHARACTER_DEBUG=1` shows the traceback instead. Logging is configured once, here.
Command groups live in `character/commands/<area>.py` and are registered below.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.text import Text
from typer.core import TyperGroup

from character import __version__
from character.config_layers import Resolved, resolve
from character.errors import CharacterError

log = logging.getLogger("character")
console = Console()
err_console = Console(stderr=True)


def print_error(e: BaseException) -> None:
    """One line on stderr; the message is plain text (a `[section]` in it is not markup)."""
    line = Text("error: ", style="bold red")
    line.append(" ".join(str(e).split()))
    err_console.print(line, soft_wrap=True)


class CharacterGroup(TyperGroup):
    """The root command: tidies every command's help once the tree is built (any terminal width, an
    example each; `commands/help_text.py`), checks input paths before a command runs
    (`commands/inputs.py`), and turns a CharacterError into one stderr line and its exit code."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Typer builds the whole tree before this root, on every entry (main, CliRunner, get_command).
        from character.commands import help_text, inputs
        from character.commands.examples import EXAMPLES

        help_text.tidy_tree(self, EXAMPLES)
        inputs.attach(self)

    def make_context(self, info_name: Any, args: Any, parent: Any = None, **extra: Any) -> Any:
        # The root's own options (--config, --env-file) are checked while parsing, before invoke.
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except CharacterError as e:
            if os.environ.get("CHARACTER_DEBUG") == "1":
                raise
            print_error(e)
            raise typer.Exit(e.exit_code) from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CharacterError as e:
            if os.environ.get("CHARACTER_DEBUG") == "1":
                raise
            print_error(e)
            ctx.exit(e.exit_code)
        except Exception as e:
            # A full disk is the user's to fix, not a bug: one line naming what filled it, like any
            # CharacterError, wherever in a library it surfaced (safetensors, torch, a temp copy).
            from character import disk_space

            if not disk_space.is_disk_full(e) or os.environ.get("CHARACTER_DEBUG") == "1":
                raise
            full = disk_space.disk_full_error(e)
            print_error(full)
            ctx.exit(full.exit_code)


app = typer.Typer(
    name="character",
    cls=CharacterGroup,
    help=(
        "Train a persona into a language model, the Open Character Training way:\n\n"
        "constitution -> DPO distillation -> introspection data -> SFT -> exact merge -> eval.\n\n"
        "Start with `character models prepare` (once, offline), then `character info` to see every "
        "setting and where it comes from, then `character pipeline remorseful --scale smoke`."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class GlobalOptions:
    """Options given before the command (`character --paper-scale info`)."""

    def __init__(self, paper_scale: bool = False, config: Path | None = None, env_file: Path | None = None):
        self.paper_scale = paper_scale
        self.config = config
        self.env_file = env_file

    def resolve(
        self,
        *,
        scale: str | None = None,
        config: Path | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> Resolved:
        """Resolve the config for a command: global flags, then the command's own."""
        presets = (["paper"] if self.paper_scale else []) + ([scale] if scale else [])
        return resolve(
            presets=presets,
            config_file=config or self.config,
            env_file=self.env_file,
            overrides={k: v for k, v in (overrides or {}).items() if v is not None},
        )


def options(ctx: typer.Context) -> GlobalOptions:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, GlobalOptions) else GlobalOptions()


def setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose == 1 else logging.WARNING
    env_level = os.environ.get("CHARACTER_LOG_LEVEL")
    if env_level:
        level = getattr(logging, env_level.upper(), level)
    handler = RichHandler(console=err_console, show_path=False, rich_tracebacks=False)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("character").setLevel(level)
    # Stage progress is shown by our bars; silence library chatter unless debugging.
    for noisy in ("transformers", "datasets", "httpx", "urllib3", "accelerate", "peft", "trl"):
        logging.getLogger(noisy).setLevel(logging.ERROR if verbose < 2 else logging.INFO)


def _version(value: bool) -> None:
    if value:
        console.print(f"character {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    paper_scale: Annotated[
        bool,
        typer.Option(
            "--paper-scale",
            help="Apply the paper preset (LoRA r64/a128, lr 5e-5, 1,830 prompts x K 5 = 9,150 pairs, ...).",
        ),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="A TOML or YAML config file layered over defaults and presets."),
    ] = None,
    env_file: Annotated[
        Path | None,
        typer.Option(
            "--env-file", help="Read CHARACTER_* settings from this .env file (never read implicitly)."
        ),
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="-v info, -vv debug.")] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    setup_logging(0 if quiet else verbose)
    ctx.obj = GlobalOptions(paper_scale=paper_scale, config=config, env_file=env_file)


def _register() -> None:
    from character.commands import config_cmd, import_optional, models_cmd

    config_cmd.register(app)
    models_cmd.register(app)
    # Areas register themselves when their module exists, so each lands independently.
    for name in (
        "constitution_cmd",
        "generate_cmd",
        "train_cmd",
        "data_cmd",
        "merge_cmd",
        "pipeline_cmd",
        "eval_cmd",
        "studio_cmd",
        "robustness_cmd",
        "doctor_cmd",
    ):
        mod = import_optional(name)
        if mod is not None:
            mod.register(app)


_register()


def main() -> None:
    try:
        app(standalone_mode=True)
    except CharacterError as e:
        if os.environ.get("CHARACTER_DEBUG") == "1":
            raise
        print_error(e)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted; everything written so far is kept (resume with --resume)")
        sys.exit(130)


if __name__ == "__main__":
    # `python -m character.cli` runs this file as `__main__`, a second copy of the module. Every command
    # imports `character.cli` (options, console), whose GlobalOptions is another class than this copy's:
    # `options(ctx)` would not recognise ctx.obj and --paper-scale/--config/--env-file were silently
    # dropped. Run the canonical module's app instead.
    from character.cli import main as canonical_main

    canonical_main()
