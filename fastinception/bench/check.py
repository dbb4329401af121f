"""``python -m fastinception check``: FastInception against the reference block on this machine."""
from __future__ import annotations

import argparse

import torch

from ..cli.arguments import positive_int
from ..functional import BACKENDS
from ..layer import FastInception
from ..models import GOOGLENET_BLOCKS
from ..reference import Inception
from .timing import measure


def _time(fn, x: torch.Tensor, repeats: int) -> float:
    """Median time of ``fn(x)`` in milliseconds over exactly ``repeats`` calls, after warm-up."""
    return measure(fn, [x], x.device, min_reps=repeats, max_reps=repeats).median_ms


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--block", default="3a", choices=sorted(GOOGLENET_BLOCKS), help="GoogLeNet block (default 3a)")
    parser.add_argument("--batch", type=positive_int, default=8, help="batch size (default 8)")
    parser.add_argument("--repeats", type=positive_int, default=10, help="timed runs, median reported (default 10)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS, help="FastInception backend (default auto)")


def run(args: argparse.Namespace) -> int:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    block_args, size = GOOGLENET_BLOCKS[args.block]
    torch.manual_seed(0)
    ref = Inception(*block_args).to(device).eval()
    fast = FastInception.from_module(ref, backend=args.backend)
    x = torch.randn(args.batch, block_args[0], size, size, device=device)
    with torch.no_grad():
        exact = ref.double()(x.double())
        ref.float()
        modules = (("reference", ref), ("FastInception", fast))
        errors = {name: (m(x).double() - exact).abs().max().item() for name, m in modules}
        times = {name: _time(m, x, args.repeats) for name, m in modules}
    where = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"block {args.block}: x {tuple(x.shape)} float32 on {where}, torch {torch.__version__}")
    print(f"{'module':<15} {'max |err| vs fp64':>18} {'time (ms)':>10}")
    for name in errors:
        print(f"{name:<15} {errors[name]:>18.3e} {times[name]:>10.2f}")
    return 0
