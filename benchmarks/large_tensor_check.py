"""Forward of block 3b where the output passes 2**31 elements, against float64 on the first and last images.

    python benchmarks/large_tensor_check.py [--batch 6000] [--size 28]

Needs a GPU with about 10 GB free (fp16: x 2.4 GB, out 4.5 GB at batch 6000). Exits 1 when an image is off.
"""
from __future__ import annotations

import argparse
import sys

import torch

from fastinception import GOOGLENET_BLOCKS, FastInception, Inception
from fastinception.testing import REL_TOL, rel_error


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=6000)
    parser.add_argument("--size", type=int, default=28)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: this check needs a GPU", file=sys.stderr)
        return 2
    block_args = GOOGLENET_BLOCKS["3b"][0]
    torch.manual_seed(0)
    ref = Inception(*block_args, device="cuda", dtype=torch.float16)
    fast = FastInception.from_module(ref, backend="triton")
    exact = ref.double()
    x = torch.randn(args.batch, block_args[0], args.size, args.size, device="cuda", dtype=torch.float16)
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        out = fast(x)
        print(f"x {tuple(x.shape)} ({x.numel():,} elements), out {tuple(out.shape)} ({out.numel():,} elements; "
              f"2**31 = {2**31:,})")
        ok = True
        for i in (0, args.batch - 1):
            error = rel_error(out[i : i + 1], exact(x[i : i + 1].double()))
            ok &= error <= REL_TOL[torch.float16]
            print(f"image {i}: relative error against the float64 reference {error:.2e} "
                  f"(fp16 tolerance {REL_TOL[torch.float16]:.0e})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
