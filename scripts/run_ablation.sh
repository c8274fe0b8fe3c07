#!/usr/bin/env bash
# Data-scale ablation for one persona: a thin launcher over `character ablation`.
#
#   scripts/run_ablation.sh PERSONA [extra args for `character ablation`...]
#   SCALES=25,50,100 MODE=parallel scripts/run_ablation.sh remorseful --scale micro
#
# Sequential (default) generates once at 100 % and trains on nested subsets; parallel runs one full
# pipeline per scale. Prefix with PAPER_SCALE=1 for the paper's hyperparameters. No credentials here:
# an OpenAI-compatible backend reads its key from the variable named by backend.api_key_env.
set -euo pipefail
if [[ $# -lt 1 || "$1" == -h || "$1" == --help ]]; then
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
persona="$1"; shift
here="$(cd "$(dirname "$0")/.." && pwd)"
character="${CHARACTER_BIN:-$here/.venv/bin/character}"
global=()
[[ "${PAPER_SCALE:-0}" == 1 ]] && global+=(--paper-scale)
exec "$character" "${global[@]}" ablation "$persona" --scales "${SCALES:-25,50,75,100}" --mode "${MODE:-sequential}" "$@"
