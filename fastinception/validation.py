"""Input checks that run before any work, and the output layout rule."""
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


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether ``x`` is laid out channels-last: what the output should follow, as ``nn.Conv2d`` does.

    With one pixel both layouts are the same, so contiguous is chosen. Otherwise the channel stride is compared
    with the stride of the innermost spatial dimension of size > 1 (this also settles C == 1 tensors, which are
    contiguous in both senses).
    """
    n, c, h, w = x.shape
    if h * w == 1:
        return False
    spatial_stride = x.stride(3) if w > 1 else x.stride(2)
    return x.stride(1) <= spatial_stride


def memory_format_of(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if is_channels_last(x) else torch.contiguous_format


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
