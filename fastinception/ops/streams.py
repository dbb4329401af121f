"""Where kernels launch (the input's device) and how independent branches are launched: side streams, one stream, or
(GoogLeNet's two spatial branches) one grouped launch."""
from __future__ import annotations

import contextlib

import torch

BRANCH_MODES = ("streams", "serial", "grouped")
_side_streams: dict = {}


def check_branch_mode(mode: str) -> str:
    if mode not in BRANCH_MODES:
        raise ValueError(f"branch mode must be one of {BRANCH_MODES}, got {mode!r}")
    return mode


def on_device(x: torch.Tensor):
    """Launch on the input's device whatever the current device is (Triton launches on the current one)."""
    return torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext()


def _streams_for(device: torch.device, count: int):
    streams = _side_streams.setdefault(device, [])
    while len(streams) < count:
        streams.append(torch.cuda.Stream(device))
    return streams[:count]


@contextlib.contextmanager
def side_streams(device: torch.device, count: int, enabled: bool):
    """Yield ``count`` context managers, one per branch; their work runs on side streams when enabled on CUDA.

    The side streams wait for the caller's stream on entry and the caller's stream waits for all of them on exit, so
    every tensor a branch touches is allocated before the fork and freed after the join on the caller's stream:
    the caching allocator cannot hand its memory to other work while a branch still uses it (the join plays the
    part of ``record_stream``), and CUDA graph capture sees a proper fork and join.
    """
    if not enabled or device.type != "cuda":
        yield (contextlib.nullcontext(),) * count
        return
    main = torch.cuda.current_stream(device)
    sides = _streams_for(device, count)
    for side in sides:
        side.wait_stream(main)
    try:
        yield tuple(torch.cuda.stream(side) for side in sides)
    finally:
        for side in sides:
            main.wait_stream(side)


def run_branch_backward(x: torch.Tensor, work: list, x_terms: list, grad_x, streams: bool) -> None:
    """A block program's backward launches: each branch's list of ``work`` on its own stream (side streams when
    ``streams``), then the input-gradient ``x_terms`` in the program's order on the caller's stream, called as
    ``term(grad_x, accumulate=...)``: the first writes every element, the rest add, so the sum has a fixed order."""
    with on_device(x):
        with side_streams(x.device, len(work), streams) as contexts:
            for launches, context in zip(work, contexts):
                with context:
                    for start_launch in launches:
                        start_launch()
        for k, term in enumerate(x_terms):
            term(grad_x, accumulate=k > 0)
