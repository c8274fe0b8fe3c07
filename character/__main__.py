"""`python -m character ...` is the `character` command (and `accelerate launch -m character ...` works)."""

from character.cli import main

main()
