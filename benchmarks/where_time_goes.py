"""Where a block's forward time goes on a GPU: host (Python and launches) or device (the kernels).

    python benchmarks/where_time_goes.py [--models 3a,5b,Mixed_5b] [--batch 128] [--dtype fp16]

For each block, eager channels_last and FastInception (triton backend, channels_last, inference) are timed four
ways after warm-up (autotuning included): one event pair per call, synchronized after each, one event pair around
50 back-to-back calls (host and device overlap), replays of a CUDA graph of one call (device time alone, no host),
and the profiler's sum of kernel times per call with the kernel names. Per-call time well above graph time means the
host bounds the call. Needs CUDA.
"""
from __future__ import annotations

import argparse
import statistics
import sys

import torch

from fastinception.bench.case import DTYPES, Case
from fastinception.bench.contenders import CONTENDERS


def per_call_ms(fn, x, reps=50) -> float:
    times = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn(x)
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e))
    return statistics.median(times)


def back_to_back_ms(fn, x, reps=50) -> float:
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record()
    for _ in range(reps):
        fn(x)
    e.record()
    torch.cuda.synchronize()
    return s.elapsed_time(e) / reps


def graph_ms(fn, x, reps=50) -> str:
    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                fn(x)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn(x)
        graph.replay()
        torch.cuda.synchronize()
        return f"{back_to_back_ms(lambda _: graph.replay(), x, reps):.3f}"
    except Exception as e:  # noqa: BLE001  (reported, not hidden)
        return f"capture failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}"


def kernel_table(fn, x, reps=10) -> tuple[float, list[str]]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            fn(x)
        torch.cuda.synchronize()
    rows = [(ev.key, ev.device_time_total / reps / 1000, ev.count // reps) for ev in prof.key_averages()
            if ev.device_time_total > 0]
    rows.sort(key=lambda r: -r[1])
    total = sum(r[1] for r in rows)
    return total, [f"    {ms:8.4f} ms x{n:<3d} {name[:90]}" for name, ms, n in rows[:8]]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="3a,5b,Mixed_5b")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--dtype", default="fp16", choices=list(DTYPES))
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: this measurement needs a GPU", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    for model in args.models.split(","):
        case = Case(model=model, pass_="fwd", dtype=args.dtype, batch=args.batch)
        torch.manual_seed(0)
        reference = case.build_reference(device)
        x = torch.randn(case.input_shape(), device=device, dtype=DTYPES[args.dtype])
        x = x.contiguous(memory_format=torch.channels_last)
        for name in ("eager-cl", "fast-triton"):
            module = CONTENDERS[name].build(reference, "channels_last")

            def fn(inp, module=module):
                with torch.no_grad():
                    return module(inp)

            for _ in range(3):
                fn(x)
            torch.cuda.synchronize()
            kernels_ms, top = kernel_table(fn, x)
            print(f"{model} b{args.batch} {args.dtype} {name}: per call {per_call_ms(fn, x):.3f} ms, "
                  f"back-to-back {back_to_back_ms(fn, x):.3f} ms, graph replay {graph_ms(fn, x)} ms, "
                  f"kernel sum {kernels_ms:.3f} ms", flush=True)
            print("\n".join(top), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
