#!/usr/bin/env bash
# Shared torchrun launcher of dist_train.sh and dist_test.sh:  bash tools/torchrun.sh SCRIPT NPROC [script args]
# OpenMMLab's variables: NNODES, NODE_RANK, MASTER_ADDR, PORT. OMP_NUM_THREADS defaults to 1 per process.
set -euo pipefail
SCRIPT=$1
NPROC=$2
shift 2
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON=${PYTHON:-python}

PYTHONPATH="$ROOT:${PYTHONPATH:-}" OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --nproc_per_node="$NPROC" \
    --master_port="${PORT:-29500}" \
    "$ROOT/$SCRIPT" "$@" --launcher pytorch
