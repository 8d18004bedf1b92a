#!/usr/bin/env bash
# Distributed training through torchrun:  bash tools/dist_train.sh CONFIG GPUS [train.py options]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR and PORT as in OpenMMLab (run the same command on every node).
# Without GPUs it starts GPUS CPU processes that talk over gloo.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: bash $0 CONFIG GPUS [tools/train.py options]" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
shift 2
exec bash "$(dirname "$0")/torchrun.sh" tools/train.py "$GPUS" "$CONFIG" "$@"
