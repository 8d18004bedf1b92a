#!/usr/bin/env bash
# Distributed training through torchrun:  bash tools/dist_train.sh CONFIG GPUS [train.py options]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR and PORT as in OpenMMLab (run the same command on every node; PORT and
# MASTER_ADDR are required there). Single node: a free port is picked unless PORT is set.
# Without GPUs it starts GPUS CPU processes that talk over gloo; on a GPU machine where torch cannot use CUDA it stops
# with the likely cause, unless MMSIMCLR_DEVICE=cpu asks for CPU processes on purpose.
# A failed group is restarted up to MAX_RESTARTS times (default 3) and resumes from its latest checkpoint.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: bash $0 CONFIG GPUS [tools/train.py options]" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
shift 2
exec bash "$(dirname "$0")/torchrun.sh" tools/train.py "$GPUS" "$CONFIG" "$@"
