#!/usr/bin/env bash
# Multi-node training under SLURM: one `accelerate launch` per node (srun), every node in the same run dir.
#
#   sbatch --nodes=2 --gres=gpu:8 scripts/slurm_train.sh dpo RUN_DIR [extra args for `character train`...]
#   GPUS_PER_NODE=8 ACCELERATE_CONFIG=zero3 MAIN_PORT=29500 scripts/slurm_train.sh sft RUN_DIR --resume
#
# STAGE is dpo or sft; RUN_DIR must be on a filesystem every node sees. Node 0 (SLURM_NODEID 0) is the
# main machine: only its rank-0 process writes, verifies, merges and registers. ACCELERATE_CONFIG is
# ddp | zero2 | zero3 (configs/accelerate/) or a YAML path (default zero2, the paper's setting); PYTHON
# is the interpreter with `character` installed (default .venv/bin/python).
set -euo pipefail
if [[ $# -lt 2 || "$1" == -h || "$1" == --help ]]; then
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
stage="$1"; run_dir="$2"; shift 2
case "$stage" in dpo|sft) ;; *) echo "error: STAGE must be dpo or sft, got '$stage'" >&2; exit 2 ;; esac
: "${SLURM_JOB_NODELIST:?run this inside a SLURM allocation (sbatch/salloc): SLURM_JOB_NODELIST is unset}"
here="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$here/.venv/bin/python}"
nodes="${SLURM_NNODES:-1}"
gpus="${GPUS_PER_NODE:-${SLURM_GPUS_ON_NODE:-1}}"
# sed reads every line (head would close the pipe early and pipefail would turn SIGPIPE into exit 141)
head_node="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)"
port="${MAIN_PORT:-29500}"
config="${ACCELERATE_CONFIG:-zero2}"
extra="$(printf ' %q' "$@")"
# SLURM_NODEID is expanded on each node, inside srun's shell, so every node gets its own machine rank.
exec srun --nodes="$nodes" --ntasks-per-node=1 bash -c "exec $(printf '%q' "$python") -m character train $stage \
--run $(printf '%q' "$run_dir") --num-processes $((nodes * gpus)) --num-machines $nodes \
--machine-rank \$SLURM_NODEID --main-process-ip $(printf '%q' "$head_node") --main-process-port $port \
--accelerate-config $(printf '%q' "$config")$extra"
