"""timm's Inception-v4 and Inception-ResNet-v2 blocks as timm's forward runs them: the oracle and eager contender of
the benchmarks' whole networks (``bench``), built around the submodules of a fused block.

``TimmBlockReference`` takes a block with timm's submodules (a ``TimmBlock``: conv+BatchNorm+ReLU units, pools,
the projection ``conv2d``) and its program (only its name and residual are read: which of timm's forwards, and the
scale), and runs each unit, pool and concatenation one by one, as timm's ``forward`` does.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


class TimmBlockReference(nn.Module):
    """timm's forward over the same submodules (same names and state_dict) as the fused ``block``."""

    def __init__(self, block: nn.Module):
        super().__init__()
        program = block.program
        self.kind = program.name
        self.scale = None if program.residual is None else program.residual.scale
        self.relu_after_sum = program.residual is not None and program.residual.relu
        for name, sub in block.named_children():
            self.add_module(name, copy.deepcopy(sub))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "InceptionC":  # two splits: branch1_0 feeds 1_1a and 1_1b, branch2_2 feeds 2_3a and 2_3b
            x1 = self.branch1_0(x)
            x2 = self.branch2_2(self.branch2_1(self.branch2_0(x)))
            out = torch.cat([self.branch0(x), self.branch1_1a(x1), self.branch1_1b(x1), self.branch2_3a(x2),
                             self.branch2_3b(x2), self.branch3(x)], 1)
        else:  # every other block: its branches (or maxpool / conv) in the order they are defined
            out = torch.cat([m(x) for name, m in self.named_children() if name not in ("conv2d", "act", "relu")], 1)
        if self.scale is None:
            return out
        out = self.conv2d(out) * self.scale + x
        return F.relu(out) if self.relu_after_sum else out


def unfused(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with each fused timm block (any module with a ``program``) replaced by its
    ``TimmBlockReference``: the same state_dict, every op in plain PyTorch."""
    model = copy.deepcopy(model)
    for name, module in list(model.named_modules()):
        if hasattr(module, "program") and name:
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent), attr, TimmBlockReference(module))
    return model
