#!/usr/bin/env bash
# Everything a GPU machine should check and measure, in one run: the correctness suite compiled on CUDA, the
# >2**31-element forward, the branch-mode timings and gpu_quick.sh. Each step has its own time limit (about 14.5 minutes
# in all) so that a slow step cannot take the others' time; a step cut short says so in summary.txt.
#
# Usage: benchmarks/gpu_check.sh OUTDIR
set -uo pipefail
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
mkdir -p "$1"
out=$(cd "$1" && pwd)
cd "$(dirname "$0")/.."
python=${PYTHON:-$(command -v python || command -v python3)}
# Installed in place with the [bench] extra from what the machine has (--no-index: it has no network), else bare.
if ! "$python" -c "import fastinception.kernels" 2>/dev/null; then
    "$python" -m pip install -q --no-index --no-build-isolation -e '.[bench]' >"$out/pip.log" 2>&1 ||
        "$python" -m pip install -q --no-deps --no-build-isolation -e . >>"$out/pip.log" 2>&1
fi
status=0
run() {  # run LIMIT_SECONDS NAME COMMAND...: the step's output goes to OUTDIR/NAME.txt
    local limit=$1 name=$2; shift 2
    echo "== $name" | tee -a "$out/summary.txt"
    timeout -s TERM "$limit" "$@" >"$out/$name.txt" 2>&1
    local rc=$?
    tail -n 3 "$out/$name.txt" | tee -a "$out/summary.txt"
    echo "exit status $rc" | tee -a "$out/summary.txt"
    [ $rc -eq 0 ] || status=1
}
# tests/inspect compiles offline for sm_90 and needs no GPU: CPU machines run it
run 210 tests "$python" -m pytest -q -x tests --ignore=tests/inspect
run 90 large-tensor "$python" benchmarks/large_tensor_check.py
run 90 branch-modes "$python" benchmarks/branch_modes.py "$out"
run 480 gpu-quick bash benchmarks/gpu_quick.sh "$out/quick"
exit $status
