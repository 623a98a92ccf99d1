#!/usr/bin/env bash
# Training on a Slurm cluster, one task per GPU (as MMDetection's and MMPose's slurm_train.sh):
#
#     GPUS=16 bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]
#
# srun starts GPUS tasks, GPUS_PER_NODE per node (defaults 8 and 8), CPUS_PER_TASK cores each
# (default 5); SRUN_ARGS adds srun options (e.g. "--quotatype=auto"). Every task runs
# tools/train.py --launcher slurm: MMEngine takes rank and world size from SLURM_PROCID and
# SLURM_NTASKS and the master from SLURM_NODELIST (MASTER_PORT, default 29500). Without CUDA the
# tasks use gloo on CPU. PYTHON (default: python on PATH) is the interpreter on the nodes.
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: [GPUS=N] bash $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]" >&2
  exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
read -r -a SRUN_ARGS <<< "${SRUN_ARGS:-}"
PYTHON=${PYTHON:-python}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

set -x
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres=gpu:"$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    "${SRUN_ARGS[@]}" \
    "$PYTHON" -u "$ROOT/tools/train.py" "$CONFIG" --work-dir="$WORK_DIR" --launcher=slurm "${@:5}"
