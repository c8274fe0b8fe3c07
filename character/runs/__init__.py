"""The one reader of run directories: status, current stage, progress, counts, durations, cost, metrics, drops.

In: a run directory as the runner writes it (see `character/runner.py`; stage paths in
`character/layout.py`), possibly still being written or left half-written by a killed process. Out:
plain Python data. `runs list|show`, the report (`character/report.py`) and the Studio
(`character/studio/`) all read runs through this package, so a number means the same thing everywhere
and no metric has a second implementation.

Every reader tolerates what a live or crashed run leaves behind: a torn last JSONL line is skipped, an
unreadable JSON file reads as absent, a stage without `manifest.json` is "running", "interrupted" or
"partial", never finished. Nothing is written.

- `files`: the files themselves (JSON, JSONL, state, manifests, cost, config) and which dirs are runs;
- `stages`: per-stage rows, drops, curves, marker rates, tokens and cost, config with sources;
- `live`: a running stage's progress (done/total, rate, ETA) and the one-run summary.
"""

from character.runs.files import (
    STATE,
    SUBRUNS,
    count_lines,
    is_run_dir,
    list_runs,
    manifest,
    number,
    one_line,
    pid_alive,
    read_cost,
    read_json,
    read_metrics,
    read_state,
    resolved_config,
    run_status,
    stages_done,
    state,
    subrun_dirs,
)
from character.runs.live import (
    Progress,
    RunSummary,
    current_stage,
    stage_progress,
    summary,
)
from character.runs.stages import (
    config_rows,
    cost_rows,
    curve,
    drop_reasons,
    marker_rates,
    role_cost_rows,
    stage_rows,
    totals,
)

__all__ = [
    "STATE",
    "SUBRUNS",
    "Progress",
    "RunSummary",
    "config_rows",
    "cost_rows",
    "count_lines",
    "current_stage",
    "curve",
    "drop_reasons",
    "is_run_dir",
    "list_runs",
    "manifest",
    "marker_rates",
    "number",
    "one_line",
    "pid_alive",
    "read_cost",
    "read_json",
    "read_metrics",
    "read_state",
    "resolved_config",
    "role_cost_rows",
    "run_status",
    "stage_progress",
    "stage_rows",
    "stages_done",
    "state",
    "subrun_dirs",
    "summary",
    "totals",
]
