"""Fold an inference-mode BatchNorm into the convolution before it."""
from __future__ import annotations

import torch
from torch import nn

from ..structure import NotConvertible

BATCHNORMS = (nn.BatchNorm2d, nn.SyncBatchNorm)


def check_foldable(bn: nn.Module, channels: int, where: str) -> None:
    """Refuse a BatchNorm that does not act as a fixed per-channel affine map on ``channels`` channels."""
    if type(bn) not in BATCHNORMS:
        raise NotConvertible(f"{where}: {type(bn).__name__}, expected nn.BatchNorm2d")
    if bn.num_features != channels:
        raise NotConvertible(f"{where}: {bn.num_features} features after a conv with {channels} output channels")
    if not bn.track_running_stats or bn.running_mean is None or bn.running_var is None:
        # Without running statistics BatchNorm normalises with each batch's own statistics, even in eval mode.
        raise NotConvertible(f"{where}: no running statistics (track_running_stats=False)")


def fold_batchnorm(conv: nn.Conv2d, bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of one convolution equal to ``bn(conv(x))`` with ``bn`` in eval mode (``fold``)."""
    return fold(conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.eps)


def fold(weight, bias, gamma, beta, mean, var, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """w' = w * s and b' = beta + (b - mean) * s with s = gamma / sqrt(var + eps) (``bias``, ``gamma`` and ``beta``
    may be None: 0, 1 and 0). Computed in float64 so the only rounding is the final cast to the weight's dtype."""
    work = torch.float64 if weight.device.type != "mps" else torch.float32  # MPS has no float64
    with torch.no_grad():
        w = weight.to(work)
        b = bias.to(work) if bias is not None else torch.zeros(w.shape[0], dtype=work, device=w.device)
        g = gamma.to(work) if gamma is not None else torch.ones_like(b)
        beta = beta.to(work) if beta is not None else torch.zeros_like(b)
        scale = g / torch.sqrt(var.to(work) + eps)
        folded_w = w * scale.reshape(-1, 1, 1, 1)
        folded_b = beta + (b - mean.to(work)) * scale
    return folded_w.to(weight.dtype), folded_b.to(weight.dtype)
