"""The reference Inception block of d2l.ai ("Networks with Parallel Concatenations"): the oracle of every test."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks.spec import InceptionSpec


class Inception(nn.Module):
    """The Inception block of d2l.ai: four branches concatenated along channels."""

    def __init__(self, in_channels, c1, c2, c3, c4, *, k2=3, k3=5, device=None, dtype=None):
        super().__init__()
        self.spec = InceptionSpec.from_args(in_channels, c1, c2, c3, c4, k2=k2, k3=k3)
        build_branches(self, self.spec, device, dtype)

    def forward(self, x):
        p1 = F.relu(self.p1_1(x))
        p2 = F.relu(self.p2_2(F.relu(self.p2_1(x))))
        p3 = F.relu(self.p3_2(F.relu(self.p3_1(x))))
        p4 = F.relu(self.p4_2(self.p4_1(x)))
        return torch.cat((p1, p2, p3, p4), dim=1)

    def extra_repr(self) -> str:
        s = self.spec
        return f"{s.in_channels}, {s.c1}, ({s.c2a}, {s.c2b}), ({s.c3a}, {s.c3b}), {s.c4}, k2={s.k2}, k3={s.k3}"


def build_branches(block: nn.Module, spec: InceptionSpec, device, dtype) -> None:
    """Create the d2l submodules in d2l's order, so equal seeds give equal initial weights (shared with
    ``FastInception``, whose state_dict is the reference's)."""
    kw = {"device": device, "dtype": dtype}
    block.p1_1 = nn.Conv2d(spec.in_channels, spec.c1, kernel_size=1, **kw)
    block.p2_1 = nn.Conv2d(spec.in_channels, spec.c2a, kernel_size=1, **kw)
    block.p2_2 = nn.Conv2d(spec.c2a, spec.c2b, kernel_size=spec.k2, padding=spec.k2 // 2, **kw)
    block.p3_1 = nn.Conv2d(spec.in_channels, spec.c3a, kernel_size=1, **kw)
    block.p3_2 = nn.Conv2d(spec.c3a, spec.c3b, kernel_size=spec.k3, padding=spec.k3 // 2, **kw)
    block.p4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
    block.p4_2 = nn.Conv2d(spec.in_channels, spec.c4, kernel_size=1, **kw)
