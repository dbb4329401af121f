"""The twelve parameter tensors of one Inception block, in one named tuple."""
from typing import NamedTuple

import torch
from torch import nn


class BlockParams(NamedTuple):
    """Weights (Cout, Cin, k, k) and biases (Cout,) of the six convolutions of a block."""

    w1: torch.Tensor
    b1: torch.Tensor
    w2a: torch.Tensor
    b2a: torch.Tensor
    w2b: torch.Tensor
    b2b: torch.Tensor
    w3a: torch.Tensor
    b3a: torch.Tensor
    w3b: torch.Tensor
    b3b: torch.Tensor
    w4: torch.Tensor
    b4: torch.Tensor

    @classmethod
    def of(cls, block: nn.Module) -> "BlockParams":
        """Read the parameters of a block with d2l's submodule names (``p1_1`` ... ``p4_2``)."""
        # The block's submodules through its module dict (nn.Module.__getattr__ costs microseconds, and this runs on
        # every forward); each conv's weight and bias as attributes, so parametrized ones are computed as usual.
        modules = block._modules
        return cls(*(t for name in _CONVS for t in (modules[name].weight, modules[name].bias)))


_CONVS = ("p1_1", "p2_1", "p2_2", "p3_1", "p3_2", "p4_2")
