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

# Stop before torchrun (whose restarts would repeat the failure) when this node has fewer visible GPUs than NPROC
# (the extra ranks would fail at cuda.set_device), or when GPUs are there but torch cannot use them.
"$PYTHON" "$PROBE" check --launcher pytorch --nproc "$NPROC"

if [ "$NNODES" -gt 1 ]; then
    if [ -z "${PORT:-}" ] || [ -z "${MASTER_ADDR:-}" ]; then
        echo "$0: NNODES=$NNODES: set PORT and MASTER_ADDR (the first node's address), the same on every node," \
             "e.g. NNODES=2 NODE_RANK=0 MASTER_ADDR=node1 PORT=29500 bash tools/dist_train.sh CONFIG 8" >&2
        exit 2
    fi
elif [ -z "${PORT:-}" ]; then
    PORT=$("$PYTHON" "$PROBE" free-port)
fi

# Restarts: torchrun's c10d rendezvous on MASTER_ADDR:PORT, and a new TCP store for the training processes at every
# (re)start (TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1, hosted by rank 0 on a free port). With the static rendezvous of
# --master_addr/--master_port, or a store shared across restarts, a restarted group reads the dead group's
# addresses from the store: gloo fails with "connectFullMesh ... Connection refused", NCCL may get a stale unique id
# (pytorch/pytorch#135712, #167288). The rendezvous numbers the nodes (NODE_RANK is accepted, not needed).
# NCCL: torch's watchdog (TORCH_NCCL_ASYNC_ERROR_HANDLING, torch's default 3) ends a process whose collective failed
# or exceeded env_cfg.dist_cfg.timeout, so that torchrun restarts the group; set to 0 or 2 it would not, hence 3.
export TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1
export TORCH_NCCL_ASYNC_ERROR_HANDLING=${TORCH_NCCL_ASYNC_ERROR_HANDLING:-3}
PYTHONPATH="$ROOT:${PYTHONPATH:-}" OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} \
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --nproc_per_node="$NPROC" \
    --rdzv-backend=c10d \
    --rdzv-endpoint="${MASTER_ADDR:-127.0.0.1}:$PORT" \
    --rdzv-id="${RDZV_ID:-mmsimclr}" \
    --max-restarts="${MAX_RESTARTS:-3}" \
    "$ROOT/$SCRIPT" "$@" --launcher pytorch
