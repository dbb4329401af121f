"""Autocast support: the block computes in the autocast dtype, as ``nn.Conv2d`` does."""
from __future__ import annotations

import torch

from .blocks.params import BlockParams

# Autocast lowers these dtypes and leaves float64 alone, as it does for convolutions.
LOWERABLE = (torch.float32, torch.float16, torch.bfloat16)


def autocast_dtype(x: torch.Tensor) -> torch.dtype | None:
    """The dtype autocast asks for on ``x``'s device, or None when autocast is off there."""
    device_type = x.device.type
    if device_type not in ("cuda", "cpu") or not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


def lowered(t: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """``t`` in the autocast ``dtype`` when autocast lowers its dtype (a differentiable cast, so a parameter's
    gradient keeps its own dtype); float64, integer tensors and None as they are."""
    return t.to(dtype) if t is not None and t.dtype in LOWERABLE else t


def cast_for_autocast(x: torch.Tensor, params: BlockParams, dtype: torch.dtype):
    """``x`` and the parameters in ``dtype`` (see ``lowered``)."""
    return lowered(x, dtype), BlockParams(*(lowered(p, dtype) for p in params))
