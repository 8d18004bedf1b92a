#!/usr/bin/env bash
# Training on a slurm cluster:  [GPUS=16] bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [WORK_DIR] [options]
# One task per GPU; slurm starts the processes, torch.distributed connects them (MASTER_ADDR = first node).
#   GPUS (16), GPUS_PER_NODE (8), CPUS_PER_TASK (5): the job's geometry; each process's data loaders use at most
#       CPUS_PER_TASK workers (tools/train.py lowers the config's num_workers and says so in the log).
#   PORT: rendezvous port; unset: derived from the job id (the same on every node, different for two jobs that
#       share a node).
#   MMSIMCLR_DEVICE=cpu: CPU processes over gloo on purpose (no --gres; GPUS counts processes). Without it, a job
#       whose nodes have GPUs that torch cannot use stops at once with the likely cause.
#   SRUN_ARGS: more srun options (word-split).
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
GPUS=${GPUS:-16}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON=${PYTHON:-python}

GRES="--gres=gpu:$GPUS_PER_NODE"
if [ "${MMSIMCLR_DEVICE:-auto}" = cpu ]; then
    GRES=""
fi
if [ -n "${PORT:-}" ]; then
    export MASTER_PORT=$PORT
fi
PYTHONPATH="$ROOT:${PYTHONPATH:-}" \
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    ${GRES} \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    "$PYTHON" -u "$ROOT/tools/train.py" "$CONFIG" "$@" --launcher slurm
