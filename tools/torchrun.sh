#!/usr/bin/env bash
# Shared torchrun launcher of dist_train.sh and dist_test.sh:  bash tools/torchrun.sh SCRIPT NPROC [script args]
# OpenMMLab's variables: NNODES, NODE_RANK, MASTER_ADDR, PORT. OMP_NUM_THREADS defaults to 1 per process.
#   PORT         rendezvous port. Single node: a free port is picked when unset (two jobs on one node never
#                collide). Multi-node (NNODES > 1): required, the same on every node, as is MASTER_ADDR.
#   MAX_RESTARTS torchrun's elastic restarts of a failed group (default 3; tools/train.py resumes from the latest
#                checkpoint when restarted); 0 disables them.
#   MMSIMCLR_DEVICE  auto (default) | cpu | cuda. auto: CUDA when torch can use it, CPU processes over gloo on a
#                machine without GPUs, and an error (with the likely cause) on a GPU machine where torch cannot use
#                CUDA. cpu: CPU processes on purpose, GPUs hidden.
set -euo pipefail
SCRIPT=$1
NPROC=$2
shift 2
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON=${PYTHON:-python}
PROBE="$ROOT/mmsimclr/utils/device_probe.py"  # standard library only: no torch import on a machine without GPUs
NNODES=${NNODES:-1}

# Stop before torchrun (whose restarts would repeat the failure) when GPUs are there but torch cannot use them.
"$PYTHON" "$PROBE" check --launcher pytorch

if [ "$NNODES" -gt 1 ]; then
    if [ -z "${PORT:-}" ] || [ -z "${MASTER_ADDR:-}" ]; then
        echo "$0: NNODES=$NNODES: set PORT and MASTER_ADDR (the first node's address), the same on every node," \
             "e.g. NNODES=2 NODE_RANK=0 MASTER_ADDR=node1 PORT=29500 bash tools/dist_train.sh CONFIG 8" >&2
        exit 2
    fi
elif [ -z "${PORT:-}" ]; then
    PORT=$("$PYTHON" "$PROBE" free-port)
fi

PYTHONPATH="$ROOT:${PYTHONPATH:-}" OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --nproc_per_node="$NPROC" \
    --master_port="$PORT" \
    --max-restarts="${MAX_RESTARTS:-3}" \
    "$ROOT/$SCRIPT" "$@" --launcher pytorch
