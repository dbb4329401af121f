"""The reference Inception block and GoogLeNet, as in d2l.ai ("Networks with Parallel Concatenations")."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .spec import InceptionSpec

# GoogLeNet's nine blocks: d2l constructor arguments and the spatial size they see on 224x224 ImageNet input.
GOOGLENET_BLOCKS = {
    "3a": ((192, 64, (96, 128), (16, 32), 32), 28),
    "3b": ((256, 128, (128, 192), (32, 96), 64), 28),
    "4a": ((480, 192, (96, 208), (16, 48), 64), 14),
    "4b": ((512, 160, (112, 224), (24, 64), 64), 14),
    "4c": ((512, 128, (128, 256), (24, 64), 64), 14),
    "4d": ((512, 112, (144, 288), (32, 64), 64), 14),
    "4e": ((528, 256, (160, 320), (32, 128), 128), 14),
    "5a": ((832, 256, (160, 320), (32, 128), 128), 7),
    "5b": ((832, 384, (192, 384), (48, 128), 128), 7),
}


class Inception(nn.Module):
    """The Inception block of d2l.ai: four branches concatenated along channels."""

    def __init__(self, in_channels, c1, c2, c3, c4, *, k2=3, k3=5, device=None, dtype=None):
        super().__init__()
        self.spec = InceptionSpec.from_args(in_channels, c1, c2, c3, c4, k2=k2, k3=k3)
        _build_branches(self, self.spec, device, dtype)

    def forward(self, x):
        p1 = F.relu(self.p1_1(x))
        p2 = F.relu(self.p2_2(F.relu(self.p2_1(x))))
        p3 = F.relu(self.p3_2(F.relu(self.p3_1(x))))
        p4 = F.relu(self.p4_2(self.p4_1(x)))
        return torch.cat((p1, p2, p3, p4), dim=1)

    def extra_repr(self) -> str:
        s = self.spec
        return f"{s.in_channels}, {s.c1}, ({s.c2a}, {s.c2b}), ({s.c3a}, {s.c3b}), {s.c4}, k2={s.k2}, k3={s.k3}"


def _build_branches(block: nn.Module, spec: InceptionSpec, device, dtype) -> None:
    """Create the d2l submodules in d2l's order, so equal seeds give equal initial weights."""
    kw = {"device": device, "dtype": dtype}
    block.p1_1 = nn.Conv2d(spec.in_channels, spec.c1, kernel_size=1, **kw)
    block.p2_1 = nn.Conv2d(spec.in_channels, spec.c2a, kernel_size=1, **kw)
    block.p2_2 = nn.Conv2d(spec.c2a, spec.c2b, kernel_size=spec.k2, padding=spec.k2 // 2, **kw)
    block.p3_1 = nn.Conv2d(spec.in_channels, spec.c3a, kernel_size=1, **kw)
    block.p3_2 = nn.Conv2d(spec.c3a, spec.c3b, kernel_size=spec.k3, padding=spec.k3 // 2, **kw)
    block.p4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
    block.p4_2 = nn.Conv2d(spec.in_channels, spec.c4, kernel_size=1, **kw)


def googlenet(num_classes: int = 10, in_channels: int = 1, fast: bool = False, **block_kwargs) -> nn.Sequential:
    """d2l's GoogLeNet: stages b1..b5 with the nine Inception blocks 3a..5b, then a linear classifier.

    ``fast=True`` builds the same network with :class:`FastInception` blocks (extra keyword arguments, such as
    ``backend``, go to them). The d2l defaults take 1-channel 96x96 images and 10 classes;
    ``googlenet(1000, 3)`` is the ImageNet-shaped network for 224x224 RGB input.
    """
    if fast:
        from .module import FastInception as block
    else:
        if block_kwargs:
            raise TypeError(f"block options {sorted(block_kwargs)} apply only to fast=True")
        block = Inception

    def blocks(*names):
        return [block(*GOOGLENET_BLOCKS[n][0], **block_kwargs) for n in names]

    def pool():
        return nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    b1 = nn.Sequential(nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3), nn.ReLU(), pool())
    b2 = nn.Sequential(
        nn.Conv2d(64, 64, kernel_size=1), nn.ReLU(), nn.Conv2d(64, 192, kernel_size=3, padding=1), nn.ReLU(), pool()
    )
    b3 = nn.Sequential(*blocks("3a", "3b"), pool())
    b4 = nn.Sequential(*blocks("4a", "4b", "4c", "4d", "4e"), pool())
    b5 = nn.Sequential(*blocks("5a", "5b"), nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())
    return nn.Sequential(b1, b2, b3, b4, b5, nn.Linear(1024, num_classes))


def googlenet_imagenet(fast: bool = False, **block_kwargs) -> nn.Sequential:
    """d2l's GoogLeNet shaped for ImageNet: 3-channel 224x224 input, 1000 classes (the benchmarks' network)."""
    return googlenet(num_classes=1000, in_channels=3, fast=fast, **block_kwargs)
