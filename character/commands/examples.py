"""Examples for commands whose docstring shows none (`help_text.tidy_tree` appends them to the help).

A command's own `Example:`/`Examples:` lines in its docstring win; this table only fills gaps, keyed by
the command path ("eval elo score"). `tests/unit/test_cli_help.py` asks every command for an example
and parses each one against the real command tree, so a renamed option breaks the test, not the user.
"""

from __future__ import annotations

EXAMPLES: dict[str, list[str]] = {
    "info": ["character info", "character --paper-scale info --help-text"],
    "ablation": [
        "character ablation remorseful --scales 25,50,100 --scale micro",
        "character --paper-scale ablation remorseful --mode parallel --budget-usd 200",
    ],
    "chat": [
        "character chat --persona remorseful  (the persona's production checkpoint)",
        "character chat --checkpoint remorseful_merged --system 'Answer in one line.'",
    ],
    "audit": ["character audit --checkpoint remorseful_merged --persona remorseful"],
    "config show": ["character config show --scale smoke-small --sources"],
    "config validate": ["character config validate my-run.toml"],
    "models prepare": ["character models prepare"],
    "models list": ["character models list"],
    "constitution list": ["character constitution list"],
    "constitution show": ["character constitution show remorseful --teacher"],
    "constitution lint": [
        "character constitution lint --strict",
        "character constitution lint my-persona.yaml",
    ],
    "constitution new": ["character constitution new pirate"],
    "constitution import": ["character constitution import traits.json --name pirate"],
    "runs list": ["character runs list"],
    "runs prune": ["character runs prune", "character runs prune --keep 1 --yes"],
    "runs show": [
        "character runs show remorseful_20260101-120000",
        "character runs show remorseful_20260101-120000 --json | jq .status",
    ],
    "checkpoint list": ["character checkpoint list --persona remorseful"],
    "checkpoint show": ["character checkpoint show remorseful_merged"],
    "checkpoint promote": ["character checkpoint promote remorseful_merged"],
    "checkpoint rollback": ["character checkpoint rollback --persona remorseful --reason 'regression'"],
    "eval revealed-preferences": [
        "character eval revealed-preferences --checkpoint remorseful_merged --persona remorseful"
    ],
    "eval elo sample": [
        "character eval elo sample --base-model embedded --tuned-model remorseful_merged "
        "--persona remorseful -o matches.jsonl"
    ],
    "eval elo score": ["character eval elo score --matches matches.jsonl"],
}
