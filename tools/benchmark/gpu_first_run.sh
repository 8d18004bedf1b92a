#!/usr/bin/env bash
# The first thing to run on a lent GPU, in one go and one time budget (default 480 s, hard-capped with `timeout`):
#   1. versions: nvidia-smi, torch / CUDA / cuDNN / GPU as torch sees it, mmengine / mmpretrain;
#   2. the CUDA unit tests: the tests parametrised over a device that skip without CUDA (found with grep for
#      `skipif(not torch.cuda.is_available()` in tests/, selected with -k cuda);
#   3. tools/benchmark/gpu_check.py: its `values` section first (this GPU vs a float64 CPU reference, PASS/FAIL),
#      then speed and memory against mmpretrain, with the rest of the budget (it stops the section running when the
#      budget is spent and skips the others);
# and writes ONE Markdown report with all of it (gpu_check's JSON beside it).
#
#   bash tools/benchmark/gpu_first_run.sh [--out FILE.md] [--budget-s 480] [--device cuda] [--dry-run]
#                                         [-- EXTRA GPU_CHECK ARGS, e.g. --sections values train-step]
#
# Report: --out, else $OUT/gpu_first_run.md when $OUT is a folder (the device machine's output folder), else
# work_dirs/gpu_first_run.md. Python: .venv/bin/python when `make setup` has made it, else python3 (with this
# checkout first on PYTHONPATH). --dry-run prints the commands and writes nothing. --device cpu runs the same steps
# on a CPU (the CUDA tests then skip; add `-- --quick`): a rehearsal of the script itself.
# Exit status 0 when the unit tests pass and gpu_check passes (every value check PASS, no section error), else 1.
set -u

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT" || exit 1

BUDGET=480
DEVICE=cuda
DRY=0
REPORT=""
EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        --out) REPORT="$2"; shift 2 ;;
        --budget-s) BUDGET="$2"; shift 2 ;;
        --device) DEVICE="$2"; shift 2 ;;
        --dry-run) DRY=1; shift ;;
        --) shift; EXTRA=("$@"); break ;;
        -h|--help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_first_run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$BUDGET" in
    ''|*[!0-9]*) echo "gpu_first_run.sh: --budget-s $BUDGET: give a whole number of seconds" >&2; exit 2 ;;
esac
if [ "$BUDGET" -lt 240 ]; then
    echo "gpu_first_run.sh: --budget-s $BUDGET: give at least 240 s (versions, unit tests and the values alone" \
         "take ~2 minutes)" >&2
    exit 2
fi
if [ -z "$REPORT" ]; then
    REPORT="work_dirs/gpu_first_run.md"
    if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then REPORT="$OUT/gpu_first_run.md"; fi
fi
case "$REPORT" in
    *.md) ;;
    *) echo "gpu_first_run.sh: --out $REPORT: give a Markdown file name ending in .md" >&2; exit 2 ;;
esac

if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY="$(command -v python3 || echo python3)"; fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

# time plan (every step under `timeout`, so the whole never exceeds the budget): versions <= 2 x 20 + 65 s, unit
# tests at most a quarter of the budget (~1 minute is typical), gpu_check what is left less RESERVE (the 20 + 10 s
# its hard timeout allows after its own budget); the report is written in a second
RESERVE=30
PYTEST_S=$(( BUDGET / 4 < 120 ? BUDGET / 4 : 120 ))
CUDA_TEST_FILES=$(grep -rlE 'skipif\(not torch\.cuda\.is_available\(\)' tests --include='test_*.py' \
                  | sort | tr '\n' ' ')
PYTEST_CMD=(timeout -k 5 "$PYTEST_S" "$PY" -m pytest -q -rfEs -p no:cacheprovider -k cuda $CUDA_TEST_FILES)
probe_py='import platform, torch
print("python", platform.python_version(), "| torch", torch.__version__, "| CUDA", torch.version.cuda,
      "| cuDNN", torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None)
if torch.cuda.is_available():
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        print(f"GPU {i}: {p.name}, capability {p.major}.{p.minor}, {p.total_memory / 2**30:.1f} GiB,"
              f" {p.multi_processor_count} SMs; bf16 native: {p.major >= 8}")
else:
    print("torch sees no CUDA device")
print("TF32 defaults: matmul", torch.backends.cuda.matmul.allow_tf32, "| cuDNN", torch.backends.cudnn.allow_tf32)
import mmengine, mmpretrain
print("mmengine", mmengine.__version__, "| mmpretrain", mmpretrain.__version__)'
PROBE_CMD=(timeout -k 5 60 "$PY" -c "$probe_py")
SMI_CMD=(timeout -k 5 15 nvidia-smi)
SMI_QUERY_CMD=(timeout -k 5 15 nvidia-smi --format=csv
               --query-gpu=name,driver_version,memory.total,compute_cap,clocks.max.sm,power.limit,temperature.gpu)

gpu_check_cmd() {  # GC_CMD: gpu_check.py with budget $1 (s), Markdown to $2; hard-stopped 20 s after its budget
    GC_CMD=(timeout -k 10 $(( $1 + 20 )) "$PY" tools/benchmark/gpu_check.py --device "$DEVICE" --budget-s "$1"
            --out "$2" ${EXTRA[@]+"${EXTRA[@]}"})
}

if [ "$DRY" = 1 ]; then
    echo "# gpu_first_run.sh --dry-run: budget ${BUDGET} s, python $PY, report $REPORT"
    echo "+ ${SMI_QUERY_CMD[*]}"
    echo "+ ${SMI_CMD[*]}"
    echo "+ ${PROBE_CMD[*]:0:5} -c <versions of torch, CUDA, cuDNN, the GPUs, mmengine, mmpretrain>"
    echo "+ ${PYTEST_CMD[*]}"
    gpu_check_cmd $(( BUDGET - RESERVE )) '<tmp>/gpu_check.md'
    echo "+ ${GC_CMD[*]}"
    echo "# (--budget-s: at most $(( BUDGET - RESERVE )); the run gives gpu_check what the steps before leave)"
    echo "# then: $REPORT (and ${REPORT%.md}.gpu_check.json)"
    exit 0
fi

START=$(date +%s)
elapsed() { echo $(( $(date +%s) - START )); }
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$(dirname "$REPORT")"

echo "[gpu_first_run] versions" >&2
{
    if command -v nvidia-smi > /dev/null; then
        "${SMI_QUERY_CMD[@]}" 2>&1
        echo
        "${SMI_CMD[@]}" 2>&1
    else
        echo "nvidia-smi: not found"
    fi
} > "$TMP/smi.txt"
"${PROBE_CMD[@]}" > "$TMP/probe.txt" 2>&1
PROBE_RC=$?

echo "[gpu_first_run] CUDA unit tests (at most ${PYTEST_S} s): $CUDA_TEST_FILES" >&2
T0=$(date +%s)
if [ -n "$CUDA_TEST_FILES" ]; then
    "${PYTEST_CMD[@]}" > "$TMP/pytest.txt" 2>&1
    PYTEST_RC=$?
else
    echo "no test file in tests/ has skipif(not torch.cuda.is_available()): nothing to run" > "$TMP/pytest.txt"
    PYTEST_RC=5
fi
PYTEST_SECONDS=$(( $(date +%s) - T0 ))
tail -n 3 "$TMP/pytest.txt" >&2

GC_BUDGET=$(( BUDGET - $(elapsed) - RESERVE ))
echo "[gpu_first_run] gpu_check.py, budget ${GC_BUDGET} s" >&2
T0=$(date +%s)
if [ "$GC_BUDGET" -ge 20 ]; then
    gpu_check_cmd "$GC_BUDGET" "$TMP/gpu_check.md"
    "${GC_CMD[@]}" > "$TMP/gpu_check.txt" 2>&1
    GC_RC=$?
else
    echo "not run: only ${GC_BUDGET} s of the budget left for it" > "$TMP/gpu_check.txt"
    GC_RC=1
fi
GC_SECONDS=$(( $(date +%s) - T0 ))
tail -n 2 "$TMP/gpu_check.txt" >&2

rc_word() {  # exit status in words
    case "$1" in
        0) echo "0 (ok)" ;; 124|137) echo "$1 (killed by timeout)" ;; 5) echo "5 (no tests collected)" ;;
        *) echo "$1 (failed)" ;;
    esac
}
GPU_NAME="$(grep -m1 '^GPU 0:' "$TMP/probe.txt" | sed 's/^GPU 0: //; s/,.*//')"
VALUES_LINE="$(grep -m1 -E '^[0-9]+ (PASS|FAIL|ERROR|n/a)' "$TMP/gpu_check.md" 2> /dev/null \
               | sed 's/\. Relative error.*//')"
PYTEST_LINE="$(grep -E '(passed|failed|skipped|error|deselected|no tests ran)' "$TMP/pytest.txt" | tail -n 1)"
if COMMIT="$(git rev-parse --short HEAD 2> /dev/null)"; then
    git diff --quiet HEAD 2> /dev/null || COMMIT="$COMMIT (with uncommitted changes)"
else
    COMMIT="unknown (no git repository)"
fi
{
    echo "# GPU first run on ${GPU_NAME:-$DEVICE}"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M:%S UTC'); mmsimclr commit $COMMIT; \`bash tools/benchmark/gpu_first_run.sh\`" \
         "(device $DEVICE, budget $BUDGET s, took $(elapsed) s); python: $PY."
    echo
    echo "## Summary"
    echo
    echo "- CUDA unit tests: exit $(rc_word "$PYTEST_RC") in ${PYTEST_SECONDS} s: $PYTEST_LINE"
    echo "- gpu_check.py: exit $(rc_word "$GC_RC") in ${GC_SECONDS} s (budget ${GC_BUDGET} s);" \
         "values: ${VALUES_LINE:-not in this run}"
    echo
    if [ -s "$TMP/gpu_check.md" ]; then
        sed -e 's/^## /### /' -e 's/^# /## /' "$TMP/gpu_check.md"
    else
        echo "## gpu_check.py wrote no report: the end of its log"
        echo
        echo '```'
        tail -n 60 "$TMP/gpu_check.txt"
        echo '```'
    fi
    if [ "$GC_RC" != 0 ] && [ -s "$TMP/gpu_check.md" ]; then
        echo
        echo "### gpu_check.py log (end)"
        echo
        echo '```'
        grep -v 'FutureWarning\|^  super().__init__' "$TMP/gpu_check.txt" | tail -n 60
        echo '```'
    fi
    echo
    echo "## CUDA unit tests"
    echo
    echo "\`${PYTEST_CMD[*]:4}\`"
    echo
    echo '```'
    tail -n 40 "$TMP/pytest.txt"
    echo '```'
    echo
    echo "## Versions"
    echo
    echo '```'
    cat "$TMP/probe.txt"
    [ "$PROBE_RC" = 0 ] || echo "(exit $PROBE_RC)"
    echo '```'
    echo
    echo '```'
    cat "$TMP/smi.txt"
    echo '```'
} > "$REPORT"
[ -s "${TMP}/gpu_check.json" ] && cp "$TMP/gpu_check.json" "${REPORT%.md}.gpu_check.json"
echo "[gpu_first_run] wrote $REPORT in $(elapsed) s" >&2

if { [ "$PYTEST_RC" = 0 ] || [ "$PYTEST_RC" = 5 ]; } && [ "$GC_RC" = 0 ]; then exit 0; fi
exit 1
