"""Input and ``out=`` checks, run once at the public boundary before any work."""
from __future__ import annotations

import torch

from .spec import InceptionSpec


def check_input(x: torch.Tensor, spec: InceptionSpec, weight: torch.Tensor) -> None:
    """Raise a clear error when ``x`` cannot go through a block of ``spec`` whose parameters look like ``weight``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"Inception expects a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"Inception expects a 4-D input (N, C, H, W), got {x.dim()}-D with shape {tuple(x.shape)}")
    if x.shape[1] != spec.in_channels:
        raise ValueError(
            f"Inception expects {spec.in_channels} input channels, got {x.shape[1]} (input shape {tuple(x.shape)})"
        )
    if not (x.dtype.is_floating_point):
        raise TypeError(f"Inception expects a floating-point input, got {x.dtype}")
    if x.dtype != weight.dtype:
        raise TypeError(f"Inception input dtype {x.dtype} differs from the parameters' dtype {weight.dtype}")
    if x.device != weight.device:
        raise RuntimeError(f"Inception input is on {x.device} but the parameters are on {weight.device}")


def check_out(out: torch.Tensor, x: torch.Tensor, spec: InceptionSpec) -> None:
    """Raise a clear error when ``out`` cannot receive the block's result for ``x``."""
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"out must be a torch.Tensor, got {type(out).__name__}")
    expected = (x.shape[0], spec.out_channels, x.shape[2], x.shape[3])
    if tuple(out.shape) != expected:
        raise ValueError(f"out must have shape {expected}, got {tuple(out.shape)}")
    if out.dtype != x.dtype:
        raise TypeError(f"out must have dtype {x.dtype} (the input's), got {out.dtype}")
    if out.device != x.device:
        raise RuntimeError(f"out must be on {x.device} (the input's device), got {out.device}")
    if out.requires_grad and out.is_leaf:
        raise RuntimeError("out must not be a leaf tensor that requires grad (it is written in place)")
    if out.numel() and torch._debug_has_internal_overlap(out) == 1:
        raise ValueError(f"out must not have elements that share memory (strides {out.stride()})")
    if out.numel() and x.numel() and _overlap(out, x):
        raise ValueError("out must not share memory with the input")


def _overlap(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Conservative test: do the byte ranges the two tensors can touch intersect in the same storage?"""
    if a.untyped_storage().data_ptr() != b.untyped_storage().data_ptr():
        return False

    def span(t):
        lo = t.data_ptr()
        hi = lo + sum((s - 1) * st for s, st in zip(t.shape, t.stride())) * t.element_size() + t.element_size()
        return lo, hi

    (a0, a1), (b0, b1) = span(a), span(b)
    return a0 < b1 and b0 < a1
