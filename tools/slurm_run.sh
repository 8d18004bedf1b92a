#!/usr/bin/env bash
# Shared srun launcher of slurm_train.sh and slurm_test.sh:  GPUS=N bash tools/slurm_run.sh SCRIPT PARTITION JOB_NAME [script args]
# One task per GPU; slurm starts the processes, torch.distributed connects them (MASTER_ADDR = first node).
#   GPUS (set by the caller), GPUS_PER_NODE (8), CPUS_PER_TASK (5): the job's geometry; each process's data loaders
#       use at most CPUS_PER_TASK workers (tools/train.py lowers the config's num_workers and says so in the log).
#   PORT: rendezvous port; unset: derived from the job id (the same on every node, different for two jobs that
#       share a node).
#   MMSIMCLR_DEVICE=cpu: CPU processes over gloo on purpose (no --gres; GPUS counts processes). Without it, a job
#       whose nodes have GPUs that torch cannot use stops at once with the likely cause.
#   SRUN_ARGS: more srun options (word-split).
set -euo pipefail
SCRIPT=$1
PARTITION=$2
JOB_NAME=$3
shift 3
GPUS=${GPUS:?GPUS (the number of processes) must be set}
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
    "$PYTHON" -u "$ROOT/$SCRIPT" "$@" --launcher slurm
