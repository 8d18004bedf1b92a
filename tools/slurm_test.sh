#!/usr/bin/env bash
# Evaluation on a slurm cluster:  [GPUS=8] bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [options]
# Environment (GPUS default 8, GPUS_PER_NODE, CPUS_PER_TASK, PORT, MMSIMCLR_DEVICE, SRUN_ARGS): see tools/slurm_run.sh.
set -euo pipefail
if [ $# -lt 4 ]; then
    echo "usage: [GPUS=8] bash $0 PARTITION JOB_NAME CONFIG CHECKPOINT [tools/test.py options]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
CHECKPOINT=$4
shift 4
GPUS=${GPUS:-8} exec bash "$(dirname "$0")/slurm_run.sh" tools/test.py "$PARTITION" "$JOB_NAME" "$CONFIG" "$CHECKPOINT" "$@"
