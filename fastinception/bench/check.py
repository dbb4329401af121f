"""``python -m fastinception check``: FastInception against the reference block on this machine."""
from __future__ import annotations

import argparse

import torch

from ..cli.arguments import positive_int
from ..cli.errors import report, too_large
from ..cli.progress import progress_bar
from ..functional import BACKENDS
from ..kernels import common as kernels
from ..layer import FastInception
from ..models import GOOGLENET_BLOCKS
from ..reference.d2l import Inception
from ..testing import rel_error
from .case import tolerance
from .timing import CPU_WARMUP_CALLS, measure

# Defaults: (usual, under Triton's CPU interpreter). There one call of block 3a at batch 1 took about 10 s on two
# cores; the usual 13 calls at batch 8 take many times that to check what 4 calls at batch 1 check.
BATCH = (8, 1)
REPEATS = (10, 1)
ON_INTERPRETER = "when the Triton kernels run under Triton's CPU interpreter"


def _time(fn, x: torch.Tensor, repeats: int) -> float:
    """Median time of ``fn(x)`` in milliseconds over exactly ``repeats`` calls, after warm-up."""
    return measure(fn, [x], x.device, min_reps=repeats, max_reps=repeats).median_ms


def _on_interpreter(backend: str, device: str) -> bool:
    """Whether FastInception's kernels run under Triton's CPU interpreter (``auto`` picks torch on CPU)."""
    return device == "cpu" and backend == "triton" and kernels.interpreting()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--block", default="3a", choices=sorted(GOOGLENET_BLOCKS), help="GoogLeNet block (default 3a)")
    parser.add_argument("--batch", type=positive_int,
                        help=f"batch size (default {BATCH[0]}; {BATCH[1]} {ON_INTERPRETER})")
    parser.add_argument("--repeats", type=positive_int,
                        help=f"timed runs, median reported (default {REPEATS[0]}; {REPEATS[1]} {ON_INTERPRETER}, "
                        "which checks correctness, not speed)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS, help="FastInception backend (default auto)")


def run(args: argparse.Namespace) -> int:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.backend == "triton":
        try:  # on a CPU without the interpreter the kernels cannot run at all: say so before building anything
            kernels.require_launchable(torch.empty(0, device=device))
        except RuntimeError as e:
            return report(f"--backend triton: {e}")
    interpreted = _on_interpreter(args.backend, device)
    batch = args.batch or BATCH[interpreted]
    repeats = args.repeats or REPEATS[interpreted]
    if interpreted:
        calls = 1 + CPU_WARMUP_CALLS + repeats  # the checked call, the warm-up, the timed runs
        print(f"no CUDA: FastInception's Triton kernels run under Triton's CPU interpreter, which is slow (seconds "
              f"to minutes a call): this checks correctness, not speed; {calls} FastInception calls (batch {batch}, "
              f"{repeats} timed)", flush=True)
    try:
        right = _check(args.block, batch, repeats, args.backend, device, interpreted)
    except (RuntimeError, TypeError, MemoryError) as e:
        if (reason := too_large(e, device)) is None:
            raise
        return report(f"block {args.block} at batch {batch}: {reason}; lower --batch")
    # A wrong FastInception result must not look like a successful check.
    return 0 if right else 1


def _check(block: str, batch: int, repeats: int, backend: str, device: str, interpreted: bool) -> bool:
    """Print each module's error against float64 and its time; whether FastInception is within tolerance."""
    block_args, size = GOOGLENET_BLOCKS[block]
    torch.manual_seed(0)
    ref = Inception(*block_args).to(device).eval()
    fast = FastInception.from_module(ref, backend=backend)
    x = torch.randn(batch, block_args[0], size, size, device=device)
    # Each call under the interpreter takes seconds: the bar is redrawn at every one.
    with progress_bar(1 + CPU_WARMUP_CALLS + repeats, "FastInception", enabled=interpreted, unit="call",
                      mininterval=0) as bar:

        def counted(x: torch.Tensor) -> torch.Tensor:
            out = fast(x)
            bar.update()
            return out

        with torch.no_grad():
            exact = ref.double()(x.double())
            ref.float()
            modules = (("reference", ref), ("FastInception", counted))
            errors = {name: rel_error(m(x), exact) for name, m in modules}
            times = {name: _time(m, x, repeats) for name, m in modules}
    tol = tolerance(torch.float32, torch.device(device), network=False)
    where = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"block {block}: x {tuple(x.shape)} float32 on {where}, torch {torch.__version__}")
    print(f"{'module':<15} {'rel err vs fp64':>16} {'time (ms)':>10}  status (tolerance {tol:.0e})")
    for name in errors:
        status = "ok" if errors[name] <= tol else "WRONG"
        print(f"{name:<15} {errors[name]:>16.3e} {times[name]:>10.2f}  {status}")
    return errors["FastInception"] <= tol
