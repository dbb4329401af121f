#!/usr/bin/env bash
# Everything a GPU machine should check and measure, sized for one call of about 8 minutes on a lent H200: the
# support table's GPU-only cells, the kernel, plan and layer tests compiled on CUDA (parallel workers, so most Triton compiles land in the on-disk cache
# that the benchmarks then reuse), the whole Inception-v3 and FID networks, three Inception-v3 blocks and three
# GoogLeNet blocks against eager PyTorch and torch.compile, where each block's time goes (host or kernels), and the
# >2**31-element forward. Each step has its own time limit (460 s in all) so that a slow step cannot take the
# others' time; a step cut short says so in summary.txt. On the first H200 run (2026-12-04) 120 s of tests with 12
# workers finished a quarter of the whole suite, so a step's limit bounds what it covers: read summary.txt.
#
# Usage: benchmarks/gpu_check.sh OUTDIR      (PYTHON=... to pick the interpreter; torch and triton must be installed)
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
{
    date -u +%Y-%m-%dT%H:%M:%SZ
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.limit --format=csv
    "$python" -c "import sys, torch, triton; print(sys.version.split()[0], 'torch', torch.__version__,
        'cuda', torch.version.cuda, 'triton', triton.__version__, torch.cuda.get_device_name())"
} >"$out/machine.txt" 2>&1
cat "$out/machine.txt"
status=0
run() {  # run LIMIT_SECONDS NAME COMMAND...: the step's output goes to OUTDIR/NAME.txt
    local limit=$1 name=$2; shift 2
    local start=$SECONDS
    echo "== $name" | tee -a "$out/summary.txt"
    timeout -s TERM "$limit" "$@" >"$out/$name.txt" 2>&1
    local rc=$?
    tail -n 4 "$out/$name.txt" | tee -a "$out/summary.txt"
    echo "exit status $rc after $((SECONDS - start)) s (limit $limit s)" | tee -a "$out/summary.txt"
    [ $rc -eq 0 ] || status=1
}
# Workers when pytest-xdist is there; each test at most 120 s when pytest-timeout is there. Each failure's traceback
# goes to failures.txt as it happens (tests/conftest.py), so a step stopped by its limit still says why.
workers=()
"$python" -c "import xdist" 2>/dev/null && workers=(-n 14)
"$python" -c "import pytest_timeout" 2>/dev/null && workers+=(--timeout 120)
export FASTINCEPTION_FAILURE_LOG="$out/failures.txt"
# FastInception before torch.compile in each case (compiling takes seconds): a step cut by its limit keeps our row
bench=("$python" -m fastinception bench --dtypes fp16 --layout channels_last --target-ms 100)
# The kernels, the plans and the layers, compiled; tests/inspect compiles offline for sm_90 and needs no GPU, and the
# command, convert, fid and train tests exercise no kernel that these leave out: CPU machines run them.
# The support table's GPU-only cells first (CUDA graphs, compile and export of both block families): the step after
# runs them again among the rest, where its limit may not reach them.
run 50 support "$python" -m pytest -v -p no:cacheprovider tests/layer/test_program_support.py \
    tests/layer/test_integration.py
# BatchNorm training on the kernels (statistics in the conv epilogue, finalize, backward), first compiled here
run 40 bn-training "$python" -m pytest -v -p no:cacheprovider tests/kernels/test_batchnorm.py \
    tests/layer/test_batchnorm_training_triton.py
run 120 tests "$python" -m pytest -v -p no:cacheprovider "${workers[@]}" tests/kernels tests/ops tests/layer
run 80 networks "${bench[@]}" --blocks none --v3-blocks none --model inception_v3,fid --googlenet-passes fwd \
    --googlenet-batches 128 --fid-batches 200 --contenders eager-nchw,eager-cl,fast-triton --out "$out/networks"
run 50 v3-blocks "${bench[@]}" --blocks none --v3-blocks Mixed_5b,Mixed_6b,Mixed_7b --passes fwd --batches 128 \
    --contenders eager-cl,fast-triton,compile --out "$out/v3-blocks"
run 50 googlenet-blocks "${bench[@]}" --blocks 3a,4e,5b --v3-blocks none --passes fwd --batches 128 \
    --contenders eager-cl,fast-triton,compile --out "$out/googlenet-blocks"
run 40 where-time-goes "$python" benchmarks/where_time_goes.py --models 3a,5b,Mixed_5b
run 30 large-tensor "$python" benchmarks/large_tensor_check.py
exit $status
