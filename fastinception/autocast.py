"""Autocast support: the block computes in the autocast dtype, as ``nn.Conv2d`` does."""
from __future__ import annotations

import torch

from .params import BlockParams

# Autocast lowers these dtypes and leaves float64 alone, as it does for convolutions.
LOWERABLE = (torch.float32, torch.float16, torch.bfloat16)


def autocast_dtype(x: torch.Tensor) -> torch.dtype | None:
    """The dtype autocast asks for on ``x``'s device, or None when autocast is off there."""
    device_type = x.device.type
    if device_type not in ("cuda", "cpu") or not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


def cast_for_autocast(x: torch.Tensor, params: BlockParams, dtype: torch.dtype):
    """``x`` and the parameters in ``dtype`` (differentiable casts, so parameter grads keep their own dtype)."""

    def cast(t):
        return t.to(dtype) if t.dtype in LOWERABLE else t

    return cast(x), BlockParams(*(cast(p) for p in params))
