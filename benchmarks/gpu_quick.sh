#!/usr/bin/env bash
# Quick GPU benchmark, sized for under 8 minutes on one H200 started cold (no network needed):
# GoogLeNet blocks 3a, 4e and 5b, forward and forward+backward, fp16 and bf16, batches 32 and 128, channels_last,
# against eager PyTorch (NCHW and channels_last) and torch.compile; plus whole-GoogLeNet inference at batch 128; then
# Inception-v3 blocks Mixed_5b, Mixed_6b and Mixed_7b (inference, fp16, batch 32) into OUTDIR/v3, and the whole
# Inception-v3 (batch 128) and the FID extractor (batch 200), inference, fp16, without torch.compile (minutes to
# compile a whole network), into OUTDIR/networks. The split of the time between the runs is an estimate, not yet
# measured on a GPU.
# Writes results.json, results.md (machine, versions, date) and speedup-*.png into OUTDIR, and the log as log.txt.
#
# Usage: benchmarks/gpu_quick.sh OUTDIR      (PYTHON=... to pick the interpreter; torch and triton must be installed)
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
mkdir -p "$1"
out=$(cd "$1" && pwd)
cd "$(dirname "$0")/.."
python=${PYTHON:-$(command -v python || command -v python3)}

# The package maps kernels/ to fastinception.kernels only when installed: install it in place with the [bench]
# extra (matplotlib, tqdm) from what the machine already has (--no-index: no network), else without its extras;
# if that is not possible either, import it from a folder of links with the same layout.
if ! "$python" -c "import fastinception.kernels" 2>/dev/null; then
    "$python" -m pip install -q --no-index --no-build-isolation -e '.[bench]' >"$out/pip.log" 2>&1 ||
        "$python" -m pip install -q --no-deps --no-build-isolation -e . >>"$out/pip.log" 2>&1 || true
fi
if ! "$python" -c "import fastinception.kernels" 2>/dev/null; then
    shim=$(mktemp -d)
    mkdir "$shim/fastinception"
    ln -s "$PWD"/fastinception/* "$shim/fastinception/"
    ln -s "$PWD/kernels" "$shim/fastinception/kernels"
    export PYTHONPATH="$shim${PYTHONPATH:+:$PYTHONPATH}"
    "$python" -c "import fastinception.kernels"
fi
"$python" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"

# Stop well inside the 8 minutes: on SIGTERM the runner still writes the tables and charts of what it finished.
status=0
timeout -s TERM 290 "$python" -m fastinception bench \
    --blocks 3a,4e,5b --passes fwd,fwdbwd --dtypes fp16,bf16 --batches 32,128 --layout channels_last \
    --contenders eager-nchw,eager-cl,compile,fast-triton,fast-torch --target-ms 100 \
    --googlenet --googlenet-passes fwd --googlenet-batches 128 \
    --out "$out" 2>&1 | tee "$out/log.txt" || status=$?
timeout -s TERM 90 "$python" -m fastinception bench \
    --blocks none --v3-blocks Mixed_5b,Mixed_6b,Mixed_7b --passes fwd --dtypes fp16 --batches 32 \
    --layout channels_last --contenders eager-nchw,eager-cl,compile,fast-triton,fast-torch --target-ms 100 \
    --out "$out/v3" 2>&1 | tee "$out/log-v3.txt" || status=$?
timeout -s TERM 80 "$python" -m fastinception bench \
    --blocks none --model inception_v3,fid --googlenet-passes fwd --googlenet-batches 128 --fid-batches 200 \
    --dtypes fp16 --layout channels_last --contenders eager-nchw,eager-cl,fast-triton --target-ms 100 \
    --out "$out/networks" 2>&1 | tee "$out/log-networks.txt" || status=$?
if [ "$status" -ne 0 ]; then
    echo "bench exited with status $status (124: stopped by the time limit; results so far are in $out)" >&2
fi
ls -l "$out"
exit "$status"
