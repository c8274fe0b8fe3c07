"""Command groups. Each module exposes `register(app)` and stays thin: resolve config, call a stage."""
