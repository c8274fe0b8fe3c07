"""Stage 2 building blocks: which model writes the data (`generator`), self-reflection (`reflection`),
self-interaction between two copies of the model (`interaction`) and the running filter ledger with the
kill criteria (`killswitch`). `character.stages.introspect` wires them together."""
