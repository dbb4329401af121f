"""GoogLeNet as d2l.ai builds it, from reference or fused Inception blocks."""
from __future__ import annotations

from torch import nn

from ..layer import FastInception
from ..reference.d2l import Inception

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


def googlenet(num_classes: int = 10, in_channels: int = 1, fast: bool = False, **block_kwargs) -> nn.Sequential:
    """d2l's GoogLeNet: stages b1..b5 with the nine Inception blocks 3a..5b, then a linear classifier.

    ``fast=True`` builds the same network with :class:`FastInception` blocks (extra keyword arguments, such as
    ``backend``, go to them). The d2l defaults take 1-channel 96x96 images and 10 classes;
    ``googlenet(1000, 3)`` is the ImageNet-shaped network for 224x224 RGB input.
    """
    if fast:
        block = FastInception
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
