"""Prove a swap before making it: run the block and its candidate on a small input and compare.

Structure cannot show what a block's forward does (another activation, an average instead of the max-pool, a
scale...). So a float64 copy of the block runs on a seeded input of shape (2, Cin, 6, 6) (6x6 reaches every
kernel's zero padding), and two checks follow, both on the ``torch`` backend (the fused PyTorch plan: any device,
no Triton autotuning):

- what the block computes: the fused block built the same way from the float64 copy must agree with it branch
  by branch to float64 rounding. Exact arithmetic leaves no room for a different activation or pool, even where
  the block's own dtype is too coarse to see it;
- what the candidate computes: the fused block in the block's dtype and device must agree with the float64 copy
  within that dtype's tolerance (``fastinception.testing``; TF32's on CUDA fp32 when cuDNN may use it).

``choose_program`` does the same for a block that may compute one of several programs (Inception-v3's pools):
every candidate runs in float64, and the one within float64 rounding is kept.

The block itself never runs, so nothing in it (running statistics, counters) changes. Cost per block: a float64
copy of its weights, a float64 fused block, and three forwards of a 2x6x6 batch (two in float64, one in the
block's dtype on its device).
"""
from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable

import torch
from torch import nn

from ..blocks.program import BlockProgram
from ..layer import FastInception
from ..testing import REL_TOL, TF32_REL_TOL, rel_error

PROBE_SHAPE = (2, 6, 6)  # batch, height, width
PROBE_SEED = 0


def tolerance(dtype: torch.dtype, device: torch.device) -> float:
    """The relative error the fused block may show in ``dtype`` on ``device`` (TF32 convolutions on CUDA fp32)."""
    if device.type == "cuda" and dtype == torch.float32 and torch.backends.cudnn.allow_tf32:
        return TF32_REL_TOL
    return REL_TOL[dtype]


def _no_autocast(device: torch.device):
    """Autocast would run the float64 copy in low precision."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def _said(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:200] if lines else ''}"


def _worst_branch(got: torch.Tensor, want: torch.Tensor, branches) -> tuple:
    """(relative error, branch, channel slice) of the branch that differs most; NaN counts as the worst.

    Branch by branch, because a difference in one narrow branch is diluted in the error of the whole output.
    ``branches``: (name, channel slice) pairs.
    """
    errors = [(rel_error(got[:, sl], want[:, sl]), name, sl) for name, sl in branches]
    return max(errors, key=lambda e: (e[0] != e[0], e[0]))


def _spec_branches(fast: FastInception):
    s = fast.spec
    return (("p1", s.p1), ("p2", s.p2), ("p3", s.p3), ("p4", s.p4))


def _program_branches(program: BlockProgram):
    return tuple((f"{i}", sl) for i, sl in enumerate(program.slices))


def _run(fast: FastInception, x: torch.Tensor) -> torch.Tensor:
    backend, fast.backend = fast.backend, "torch"
    try:
        return fast(x)
    finally:
        fast.backend = backend


def _inputs(in_channels: int, dtype: torch.dtype, device: torch.device):
    """The seeded probe input in the block's dtype and device, and in float64 where float64 runs."""
    batch, height, width = PROBE_SHAPE
    gen = torch.Generator().manual_seed(PROBE_SEED)
    x = torch.randn(batch, in_channels, height, width, generator=gen, dtype=torch.float64)
    x = x.to(device=device, dtype=dtype)
    exact_device = torch.device("cpu") if device.type == "mps" else device  # MPS has no float64
    return x, x.to(device=exact_device, dtype=torch.float64)


def _exact(block: nn.Module, x64: torch.Tensor, build: Callable):
    """(``build`` of a float64 copy of ``block``, the copy's output on ``x64``), or the reason it cannot run.

    Call under no_grad and without autocast."""
    try:
        exact = copy.deepcopy(block).to(device=x64.device, dtype=torch.float64)
        built = build(exact)  # before the copy's forward, which may change its state
    except Exception as error:
        return f"probe: cannot make a float64 copy of the block and its fused block ({_said(error)})"
    x_in = x64.clone()
    try:
        want = exact(x_in)
    except Exception as error:
        return f"probe: the block's forward raises {_said(error)}"
    if not isinstance(want, torch.Tensor):
        return f"probe: the block's forward returns {type(want).__name__}, expected a tensor"
    if not torch.equal(x_in, x64):
        return "probe: the block's forward modifies its input in place"
    return built, want


def _unusable(dtype: torch.dtype, device: torch.device) -> str | None:
    if device.type == "meta":
        return "probe: parameters on the meta device hold no values to run the block on"
    if dtype not in REL_TOL:
        return f"probe: no tolerance known for {dtype}"
    return None


def _within_tolerance(got: torch.Tensor, want: torch.Tensor, dtype, device) -> str | None:
    err, tol = rel_error(got, want), tolerance(dtype, device)
    if not err <= tol:
        return f"probe: the fused block in {dtype} is off by relative error {err:.2g}, over its tolerance {tol:.0e}"
    return None


def probe(block: nn.Module, fast: FastInception, build: Callable) -> str | None:
    """None when ``fast`` computes what ``block`` does on the probe input; else the reason, for the report.

    ``build(module)`` makes the fused block of a module shaped like ``block``, as ``fast`` was made.
    """
    weight = fast.p1_1.weight
    dtype, device = weight.dtype, weight.device
    unusable = _unusable(dtype, device)
    if unusable:
        return unusable
    x, x64 = _inputs(fast.spec.in_channels, dtype, device)
    with torch.no_grad(), _no_autocast(device):
        exact = _exact(block, x64, build)
        if isinstance(exact, str):
            return exact
        fast64, want = exact
        try:
            got64, got = _run(fast64, x64), _run(fast, x)
        except Exception as error:
            return f"probe: the fused block raises {_said(error)}"
    if want.shape != got.shape:
        return f"probe: the block's forward gives shape {tuple(want.shape)}, the fused block {tuple(got.shape)}"
    err, branch, sl = _worst_branch(got64, want, _spec_branches(fast))
    if not err <= REL_TOL[torch.float64]:
        return (
            f"probe: the block's forward differs from the fused block (relative error {err:.2g} in branch {branch}, "
            f"channels {sl.start}:{sl.stop}, both in float64)"
        )
    return _within_tolerance(got, want, dtype, device)


def choose_program(block: nn.Module, candidates, build: Callable, dtype: torch.dtype, device: torch.device):
    """The ``ProgramBlock`` of the candidate program that computes what ``block`` does, or the reason none does.

    ``build(module, program)`` makes the block of a module shaped like ``block`` for one of ``candidates``
    (programs that differ where structure cannot look, such as the pool); ``dtype`` and ``device`` are the
    block's. Each candidate runs in float64 against a float64 copy of the block, branch by branch; the one within
    float64 rounding is built in the block's dtype and must agree within that dtype's tolerance.
    """
    unusable = _unusable(dtype, device)
    if unusable:
        return unusable
    x, x64 = _inputs(candidates[0].in_channels, dtype, device)
    with torch.no_grad(), _no_autocast(device):
        exact = _exact(block, x64, lambda copy64: [build(copy64, p) for p in candidates])
        if isinstance(exact, str):
            return exact
        blocks64, want = exact
        misses = []
        for program, block64 in zip(candidates, blocks64):
            try:
                got64 = block64(x64)
            except Exception as error:
                return f"probe: the fused block raises {_said(error)}"
            if got64.shape != want.shape:
                misses.append(f"{program.name}: shape {tuple(got64.shape)}, the block's {tuple(want.shape)}")
                continue
            err, branch, sl = _worst_branch(got64, want, _program_branches(program))
            if err <= REL_TOL[torch.float64]:
                break
            misses.append(f"{program.name}: relative error {err:.2g} in branch {branch}")
        else:
            return "probe: the block's forward matches none of its candidates (" + "; ".join(misses) + ")"
        try:
            fast = build(block, program)
            got = fast(x)
        except Exception as error:
            return f"probe: the fused block raises {_said(error)}"
    return _within_tolerance(got, want, dtype, device) or fast
