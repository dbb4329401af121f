"""Seeded block configurations and the float64 reference check shared by the block-level tests."""
from __future__ import annotations

import copy
import random

import pytest
import torch

from fastinception import GOOGLENET_BLOCKS, FastInception, Inception

from numerics import assert_close

FORMATS = {"nchw": torch.contiguous_format, "nhwc": torch.channels_last}


def _case(args, k3, shape, fmt, ident):
    return pytest.param(args, k3, shape, fmt, id=f"{ident}-{args}-k3={k3}-{'x'.join(map(str, shape))}-{fmt}")


def random_cases(count: int, seed: int, max_channels: int = 48, max_side: int = 12, max_batch: int = 4):
    """``count`` random (block args, k3, input shape, memory format) cases; k3 and the format alternate."""
    rng = random.Random(seed)
    cases = []
    for i in range(count):
        ch = [rng.randint(1, max_channels) for _ in range(7)]
        args = (ch[0], ch[1], (ch[2], ch[3]), (ch[4], ch[5]), ch[6])
        shape = (rng.randint(1, max_batch), args[0], rng.randint(1, max_side), rng.randint(1, max_side))
        cases.append(_case(args, 5 if (i // 2) % 2 == 0 else 3, shape, "nhwc" if i % 2 else "nchw", i))
    return cases


def googlenet_cases(side: int = 4, batch: int = 2):
    """The nine GoogLeNet block configurations at a small spatial size."""
    return [
        _case(args, 5, (batch, args[0], side, side), "nhwc" if i % 2 else "nchw", name)
        for i, (name, (args, _)) in enumerate(GOOGLENET_BLOCKS.items())
    ]


def seeded_pair(args, k3, dtype, seed, backend, device="cpu"):
    """(FastInception on ``backend``, reference Inception) with the same seeded weights."""
    torch.manual_seed(seed)
    ref = Inception(*args, k3=k3, device=device, dtype=dtype)
    return FastInception.from_module(ref, backend=backend), ref


def make_input(shape, fmt, dtype=torch.float32, device="cpu", seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
    return x.contiguous(memory_format=FORMATS[fmt])


def check_against_float64(fast, ref: Inception, x: torch.Tensor, fmt: str, *, tol=None, grads=True) -> None:
    """Forward, input grad and every parameter grad of ``fast`` (in ``x.dtype``) against ``ref`` in float64.

    ``fast`` and ``ref`` hold the same weights; the reference is a float64 copy of ``ref``.
    """
    dtype = x.dtype
    exact = copy.deepcopy(ref).to(device=x.device, dtype=torch.float64)
    x64 = x.detach().double().requires_grad_(grads)
    want = exact(x64)
    xin = x.detach().clone(memory_format=FORMATS[fmt]).requires_grad_(grads)
    got = fast(xin)
    assert got.dtype == dtype
    assert got.is_contiguous(memory_format=FORMATS[fmt]), f"output is not in the input's memory format ({fmt})"
    assert_close(got, want, dtype, "forward", tol)
    if not grads:
        return
    g = torch.randn_like(want)
    want.backward(g)
    got.backward(g.to(dtype))
    assert_close(xin.grad, x64.grad, dtype, "grad x", tol)
    exact_params = dict(exact.named_parameters())
    for name, p in fast.named_parameters():
        assert p.grad is not None, f"no gradient for {name}"
        assert_close(p.grad, exact_params[name].grad, dtype, f"grad {name}", tol)
