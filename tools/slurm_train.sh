#!/usr/bin/env bash
# Training on a slurm cluster:  [GPUS=16] bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [WORK_DIR] [options]
# Environment (GPUS default 16, GPUS_PER_NODE, CPUS_PER_TASK, PORT, MMSIMCLR_DEVICE, SRUN_ARGS): see
# tools/slurm_run.sh, the srun launcher shared with slurm_test.sh.
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: [GPUS=16] bash $0 PARTITION JOB_NAME CONFIG [WORK_DIR] [tools/train.py options]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
shift 3
if [ $# -gt 0 ] && [[ "$1" != --* ]]; then
    # The work dir goes back into "$@" rather than into an array: bash <= 4.3 treats "${ARRAY[@]}" of an empty
    # array as an unbound variable under set -u (the job died before srun when no WORK_DIR was given), while "$@"
    # with no arguments is fine in every bash.
    WORK_DIR=$1
    shift
    set -- --work-dir "$WORK_DIR" "$@"
fi
GPUS=${GPUS:-16} exec bash "$(dirname "$0")/slurm_run.sh" tools/train.py "$PARTITION" "$JOB_NAME" "$CONFIG" "$@"
