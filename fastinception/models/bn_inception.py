"""BN-Inception as pretrainedmodels ports it, from fused blocks."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks.programs import BN_INCEPTION_BLOCKS
from ..functional import check_backend
from ..program_block import run_with_batchnorm

# BN-Inception's units per block type (7 convs in a block, 5 in a reduction), as the port in pretrainedmodels names
# them (inception_<block>_<unit>, its BatchNorm <...>_bn): the order of each program's conv slots.
BN_INCEPTION_UNITS = {
    "block": ("1x1", "3x3_reduce", "3x3", "double_3x3_reduce", "double_3x3_1", "double_3x3_2", "pool_proj"),
    "reduction": ("3x3_reduce", "3x3", "double_3x3_reduce", "double_3x3_1", "double_3x3_2"),
}


class BNInception(nn.Module):
    """BN-Inception (Inception-v2) as pretrainedmodels' ``bninception`` ports it, on the fused plan: the same flat
    module names and state_dict (each conv with a bias, then a BatchNorm with eps 1e-5 named ``<conv>_bn``), so its
    weights load, and its forward (``features`` then ``logits``: an average pool over the whole feature map, which
    is the released port's fixed 7x7 pool at its 224x224 input, and ``last_linear``). Each Inception block runs its
    program (``programs.BN_INCEPTION_BLOCKS``) with BatchNorm and ReLU as each conv's epilogue, so the network
    trains as the port does. Inputs as the port expects them (BGR, 0-255, mean subtracted) are the caller's
    business. ``backend`` is the blocks' (``program_block.run_with_batchnorm``: ``"auto"`` runs the Triton kernels
    on CUDA in eval mode, with BatchNorm folded on every call)."""

    def __init__(self, num_classes: int = 1000, *, backend: str = "auto"):
        super().__init__()
        self.backend = check_backend(backend)
        self.conv1_7x7_s2 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.conv1_7x7_s2_bn = nn.BatchNorm2d(64)
        self.pool1_3x3_s2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2_3x3_reduce = nn.Conv2d(64, 64, kernel_size=1)
        self.conv2_3x3_reduce_bn = nn.BatchNorm2d(64)
        self.conv2_3x3 = nn.Conv2d(64, 192, kernel_size=3, padding=1)
        self.conv2_3x3_bn = nn.BatchNorm2d(192)
        self.pool2_3x3_s2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self._block_units = {}  # block -> its conv names, in its program's slot order
        for block, (program, _) in BN_INCEPTION_BLOCKS.items():
            slots = program.conv_slots()
            units = next(u for u in BN_INCEPTION_UNITS.values() if len(u) == len(slots))
            self._block_units[block] = [f"inception_{block}_{unit}" for unit in units]
            for name, slot in zip(self._block_units[block], slots, strict=True):
                conv = slot.conv
                self.add_module(name, nn.Conv2d(slot.in_channels, conv.out_channels, conv.kernel, conv.stride,
                                                conv.padding))
                self.add_module(f"{name}_bn", nn.BatchNorm2d(conv.out_channels))
        self.last_linear = nn.Linear(1024, num_classes)

    def _unit(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return F.relu(getattr(self, f"{name}_bn")(getattr(self, name)(x)))

    def _block(self, block: str, x: torch.Tensor) -> torch.Tensor:
        names = self._block_units[block]
        convs, bns = [getattr(self, n) for n in names], [getattr(self, f"{n}_bn") for n in names]
        return run_with_batchnorm(BN_INCEPTION_BLOCKS[block][0], [(c.weight, c.bias) for c in convs], bns, x,
                                  self.backend, f"inception_{block}")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1_3x3_s2(self._unit("conv1_7x7_s2", x))
        x = self.pool2_3x3_s2(self._unit("conv2_3x3", self._unit("conv2_3x3_reduce", x)))
        for block in BN_INCEPTION_BLOCKS:
            x = self._block(block, x)
        return x

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(features, kernel_size=features.shape[2])
        return self.last_linear(x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.features(x))


def bn_inception(num_classes: int = 1000, **kwargs) -> BNInception:
    """BN-Inception on fused blocks, pretrainedmodels' layout and state_dict (see ``BNInception``)."""
    return BNInception(num_classes, **kwargs)
