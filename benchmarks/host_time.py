"""Host (Python) time of one FastInception call on the triton backend, with the kernel launches stubbed out.

What a call costs the CPU before any GPU work: the layer's checks, autocast and backend choice, the custom-op
dispatch, the autograd Function, the buffers, and each launcher's arguments; not Triton's own launch (binding and
driver call), which the stub replaces. At batch 1 this is what bounds latency when no CUDA graph is used. Runs on
the CPU, anywhere; prints microseconds per call (median of many).

Usage: python benchmarks/host_time.py [--block 3a] [--reps 2000]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TRITON_INTERPRET", "1")  # lets CPU tensors through the backend's device check

import torch  # noqa: E402

from fastinception import GOOGLENET_BLOCKS, FastInception  # noqa: E402
from fastinception.kernels import conv2d_backward, conv2d_forward, launch, stem_backward, stem_forward  # noqa: E402


def stub_launches():
    """Every kernel launch becomes a no-op; everything before it still runs."""
    def no_launch(*args, **kwargs):
        return None

    for module in (conv2d_forward, stem_forward, conv2d_backward, stem_backward):
        module.launch = no_launch
    launch.launch = no_launch
    conv2d_backward.run_launch = no_launch  # the partial-sum reduction launches through it directly


def per_call_us(fn, reps: int) -> float:
    for _ in range(min(reps // 10, 200)):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--block", default="3a", choices=sorted(GOOGLENET_BLOCKS))
    parser.add_argument("--reps", type=int, default=2000)
    args = parser.parse_args()
    stub_launches()
    torch.set_num_threads(1)
    block_args, size = GOOGLENET_BLOCKS[args.block]
    torch.manual_seed(0)
    # channels-last weights, as in a model moved to channels_last: otherwise each call's copy of the k x k weights
    # into that layout (an asynchronous device copy on a GPU) would be timed here as CPU work
    fast = FastInception(*block_args, backend="triton").eval().to(memory_format=torch.channels_last)
    x = torch.randn(1, block_args[0], size, size).contiguous(memory_format=torch.channels_last)
    xg = x.clone().requires_grad_(True)
    grad = torch.randn(1, fast.spec.out_channels, size, size).contiguous(memory_format=torch.channels_last)

    def inference():
        with torch.no_grad():
            fast(x)

    def training_step():
        torch.autograd.backward(fast(xg), grad)

    print(f"block {args.block}, batch 1, {size}x{size}, channels_last input and weights, launches stubbed "
          f"(torch {torch.__version__}, CPU)")
    print(f"forward (no_grad)          {per_call_us(inference, args.reps):8.1f} us")
    print(f"forward + backward         {per_call_us(training_step, args.reps // 4):8.1f} us")


if __name__ == "__main__":
    main()
