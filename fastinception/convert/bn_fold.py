"""Fold an inference-mode BatchNorm into the convolution before it."""
from __future__ import annotations

import torch
from torch import nn

from ..blocks.structure import NotConvertible
from ..program_block import fold_into_conv

BATCHNORMS = (nn.BatchNorm2d, nn.SyncBatchNorm)


# What a BatchNorm subclass may carry besides the normalisation: timm's BatchNormAct2d applies its ``drop`` and its
# ``act`` after it (an identity and the unit's ReLU in its ConvNormAct units); the probe proves the result.
CARRIED = {"drop": (nn.Identity,), "act": (nn.ReLU, nn.Identity)}


def check_foldable(bn: nn.Module, channels: int, where: str) -> None:
    """Refuse a BatchNorm that does not act as a fixed per-channel affine map on ``channels`` channels (then at most
    a ReLU, as timm's BatchNormAct2d)."""
    if type(bn) not in BATCHNORMS:
        carried = {name: type(m) for name, m in bn.named_children()}
        if not isinstance(bn, nn.BatchNorm2d) or any(name not in CARRIED or kind not in CARRIED[name]
                                                      for name, kind in carried.items()):
            raise NotConvertible(f"{where}: {type(bn).__name__}, expected nn.BatchNorm2d (or one that carries only "
                                 f"a ReLU, as timm's BatchNormAct2d)")
    if bn.num_features != channels:
        raise NotConvertible(f"{where}: {bn.num_features} features after a conv with {channels} output channels")
    if not bn.track_running_stats or bn.running_mean is None or bn.running_var is None:
        # Without running statistics BatchNorm normalises with each batch's own statistics, even in eval mode.
        raise NotConvertible(f"{where}: no running statistics (track_running_stats=False)")


def fold_batchnorm(conv: nn.Conv2d, bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of one convolution equal to ``bn(conv(x))`` with ``bn`` in eval mode (``fold``)."""
    return fold(conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.eps)


def fold(weight, bias, gamma, beta, mean, var, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``program_block.fold_into_conv`` computed in float64, so the only rounding is the final cast to the weight's
    dtype; not differentiable (a converted block holds the results as its own parameters)."""
    work = torch.float64 if weight.device.type != "mps" else torch.float32  # MPS has no float64
    with torch.no_grad():
        folded_w, folded_b = fold_into_conv(*(None if t is None else t.to(work)
                                              for t in (weight, bias, gamma, beta, mean, var)), eps)
    return folded_w.to(weight.dtype), folded_b.to(weight.dtype)
