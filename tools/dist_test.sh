#!/usr/bin/env bash
# Distributed evaluation through torchrun:  bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py options]
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: bash $0 CONFIG CHECKPOINT GPUS [tools/test.py options]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
shift 3
# Evaluation is not restarted by default (a failure would only repeat); PORT, NNODES, MMSIMCLR_DEVICE as dist_train.sh.
export MAX_RESTARTS=${MAX_RESTARTS:-0}
exec bash "$(dirname "$0")/torchrun.sh" tools/test.py "$GPUS" "$CONFIG" "$CHECKPOINT" "$@"
