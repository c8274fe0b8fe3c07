"""Pipeline stages: each module exports `run(cfg, run_dir, *, progress=True, tracker=None) -> Manifest`."""
