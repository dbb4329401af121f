"""Compare how the two spatial branches are launched: side streams, one stream, or one grouped launch.

    python benchmarks/branch_modes.py OUTDIR [--blocks 3a,4e,5b] [--batches 1,32,128] [--dtype fp16]

Forward of FastInception (triton backend, channels_last) per block and batch, each mode checked against the
serial mode before it is timed; writes ``branch-modes.md`` and ``branch-modes.json`` into OUTDIR. Needs CUDA.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

import torch

from fastinception import GOOGLENET_BLOCKS, FastInception
from fastinception.bench.case import DTYPES
from fastinception.bench.machine import describe, machine_info
from fastinception.bench.timing import measure, ring_length
from fastinception.ops.streams import BRANCH_MODES
from fastinception.testing import REL_TOL, rel_error


def time_modes(block: str, batch: int, dtype: torch.dtype, device: torch.device) -> dict:
    args, size = GOOGLENET_BLOCKS[block]
    torch.manual_seed(0)
    fast = FastInception(*args, backend="triton", device=device, dtype=dtype)
    shape = (batch, args[0], size, size)
    n = ring_length(batch * args[0] * size * size * torch.finfo(dtype).bits // 8, device)
    cl = torch.channels_last
    ring = [torch.randn(shape, device=device, dtype=dtype).contiguous(memory_format=cl) for _ in range(n)]
    row = {}
    with torch.no_grad():
        fast.branch_mode = "serial"
        want = fast(ring[0])
        for mode in BRANCH_MODES:
            fast.branch_mode = mode
            error = rel_error(fast(ring[0]), want)
            if not error <= REL_TOL[dtype]:
                row[mode] = {"status": "WRONG", "rel_error": error}
                continue
            timing = measure(fast, ring, device)
            row[mode] = {"status": "ok", "rel_error": error, "median_ms": timing.median_ms, "p20_ms": timing.p20_ms,
                         "p80_ms": timing.p80_ms}
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=pathlib.Path, help="folder for branch-modes.md and branch-modes.json")
    parser.add_argument("--blocks", default="3a,4e,5b")
    parser.add_argument("--batches", default="1,32,128")
    parser.add_argument("--dtype", default="fp16", choices=sorted(DTYPES))
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: the branch modes can only be timed on a GPU", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    info = machine_info(device)
    lines = [f"# Branch modes: forward, {args.dtype}, channels_last", "", f"- machine: {describe(info)}", "",
             "| block | batch | " + " | ".join(f"{m} ms" for m in BRANCH_MODES) + " | fastest |",
             "|---|---:|" + "---:|" * len(BRANCH_MODES) + "---|"]
    results = []
    for block in args.blocks.split(","):
        for batch in map(int, args.batches.split(",")):
            row = time_modes(block, batch, DTYPES[args.dtype], device)
            results.append({"block": block, "batch": batch, "modes": row})
            timed = {m: r["median_ms"] for m, r in row.items() if r["status"] == "ok"}
            cells = [f"{row[m]['median_ms']:.4f}" if m in timed else row[m]["status"] for m in BRANCH_MODES]
            fastest = min(timed, key=timed.get) if timed else "-"
            lines.append(f"| {block} | {batch} | " + " | ".join(cells) + f" | {fastest} |")
            print(lines[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "branch-modes.md").write_text("\n".join(lines) + "\n")
    (args.out / "branch-modes.json").write_text(json.dumps({"machine": info, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
