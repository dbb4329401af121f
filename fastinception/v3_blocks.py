"""Inception-v3's blocks as drop-in modules: torchvision's constructors, submodule names and state_dict, computed
with the fused plan.

Each conv is a conv+BatchNorm unit (``ConvBN``, torchvision's ``BasicConv2d``: conv without bias, BatchNorm with
eps 0.001, ReLU). The block runs its program (``programs.inception_v3_a`` ...) on the fused PyTorch plan, with each
unit's BatchNorm and ReLU as the epilogue of its conv: in training mode BatchNorm normalises with the batch's
statistics and updates its running averages exactly as the unit would, so these blocks train as torchvision's do.
``pool`` picks the pool branch's pool: torchvision's (``AVG_3X3``) or the FID network's
(``AVG_3X3_EXCLUDE_PAD``; ``MAX_3X3`` for the last E block).

``backend``: on ``"triton"`` the units' BatchNorm is folded into their convs on every call (a few small ops on the
weights, differentiable, so the convs and the BatchNorm affine parameters still get gradients), which is what
BatchNorm computes in eval mode only. A block whose units normalise with batch statistics (training mode) runs on
``"triton"`` with BatchNorm on the kernels (statistics in the convs' epilogues, ``ops/program_bn_triton.py``), and
on ``"auto"`` the PyTorch plan with each unit's BatchNorm and ReLU after its conv
(``program_block.run_with_batchnorm``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks.program import BlockProgram
from .blocks.programs import (
    AVG_3X3,
    V3_UNIT_NAMES,
    inception_v3_a,
    inception_v3_b,
    inception_v3_c,
    inception_v3_d,
    inception_v3_e,
)
from .functional import check_backend
from .program_block import run_with_batchnorm

BN_EPS = 0.001


class ConvBN(nn.Module):
    """torchvision's ``BasicConv2d``: conv without bias, BatchNorm (eps 0.001), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, *, device=None,
                 dtype=None):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False, device=device,
                              dtype=dtype)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class FastV3Block(nn.Module):
    """A v3 block: ``program`` with one ``ConvBN`` per conv slot, under torchvision's unit names."""

    def __init__(self, program: BlockProgram, unit_names, *, backend: str = "auto", device=None, dtype=None):
        super().__init__()
        self.backend = check_backend(backend)
        self.program = program
        self._unit_names = tuple(unit_names)
        for slot, name in zip(program.conv_slots(), self._unit_names, strict=True):
            conv = slot.conv
            self.add_module(name, ConvBN(slot.in_channels, conv.out_channels, conv.kernel, conv.stride, conv.padding,
                                         device=device, dtype=dtype))

    def units(self) -> list[ConvBN]:
        return [self._modules[name] for name in self._unit_names]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        units = self.units()
        return run_with_batchnorm(self.program, [(u.conv.weight, None) for u in units], [u.bn for u in units], x,
                                  self.backend, self.program.name or "this block")

    def extra_repr(self) -> str:
        p = self.program
        return f"{p.name or 'program'}: {p.in_channels} -> {p.out_channels} channels, backend={self.backend!r}"


class FastInceptionA(FastV3Block):
    def __init__(self, in_channels: int, pool_features: int, pool=AVG_3X3, **factory):
        super().__init__(inception_v3_a(in_channels, pool_features, pool, name="InceptionA"),
                         V3_UNIT_NAMES["InceptionA"], **factory)


class FastInceptionB(FastV3Block):
    def __init__(self, in_channels: int, **factory):
        super().__init__(inception_v3_b(in_channels, name="InceptionB"), V3_UNIT_NAMES["InceptionB"], **factory)


class FastInceptionC(FastV3Block):
    def __init__(self, in_channels: int, channels_7x7: int, pool=AVG_3X3, **factory):
        super().__init__(inception_v3_c(in_channels, channels_7x7, pool, name="InceptionC"),
                         V3_UNIT_NAMES["InceptionC"], **factory)


class FastInceptionD(FastV3Block):
    def __init__(self, in_channels: int, **factory):
        super().__init__(inception_v3_d(in_channels, name="InceptionD"), V3_UNIT_NAMES["InceptionD"], **factory)


class FastInceptionE(FastV3Block):
    def __init__(self, in_channels: int, pool=AVG_3X3, **factory):
        super().__init__(inception_v3_e(in_channels, pool, name="InceptionE"), V3_UNIT_NAMES["InceptionE"],
                         **factory)
