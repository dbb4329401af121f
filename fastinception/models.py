"""GoogLeNet as d2l.ai builds it, from reference or fused Inception blocks; Inception-v3 as torchvision builds it and
BN-Inception as pretrainedmodels ports it, from fused blocks."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks.programs import AVG_3X3, AVG_3X3_EXCLUDE_PAD, BN_INCEPTION_BLOCKS, MAX_3X3, V3_BLOCK_KINDS, V3_STEM
from .functional import check_backend
from .layer import FastInception
from .program_block import run_with_batchnorm
from .reference.d2l import Inception
from .v3_blocks import ConvBN, FastInceptionA, FastInceptionB, FastInceptionC, FastInceptionD, FastInceptionE

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


class InceptionV3(nn.Module):
    """torchvision's ``Inception3`` (without the auxiliary classifier) on fused v3 blocks: the same module names and
    state_dict, so torchvision's weights load (drop their ``AuxLogits.*`` entries), and it trains as torchvision's
    does (BatchNorm in each conv's epilogue, see ``v3_blocks``).

    ``fid=True`` builds the FID network's blocks instead (pytorch-fid's pools: averages without the padding in A, C
    and the first E, a max-pool in the last E); pytorch-fid's feature extractor itself is ``fastinception.fid``.
    ``transform_input`` re-normalises ImageNet-normalised input as torchvision's does for its pretrained weights.
    ``backend`` is every block's (``v3_blocks``: ``"auto"`` runs the Triton kernels on CUDA in eval mode).
    """

    def __init__(self, num_classes: int = 1000, *, transform_input: bool = False, dropout: float = 0.5,
                 fid: bool = False, init_weights: bool = True, backend: str = "auto"):
        super().__init__()
        avg = AVG_3X3_EXCLUDE_PAD if fid else AVG_3X3
        b = {"backend": backend}
        self.transform_input = transform_input
        for name, (out, cin, k, stride, padding) in V3_STEM.items():
            self.add_module(name, ConvBN(cin, out, k, stride, padding))
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = FastInceptionA(192, 32, avg, **b)
        self.Mixed_5c = FastInceptionA(256, 64, avg, **b)
        self.Mixed_5d = FastInceptionA(288, 64, avg, **b)
        self.Mixed_6a = FastInceptionB(288, **b)
        self.Mixed_6b = FastInceptionC(768, 128, avg, **b)
        self.Mixed_6c = FastInceptionC(768, 160, avg, **b)
        self.Mixed_6d = FastInceptionC(768, 160, avg, **b)
        self.Mixed_6e = FastInceptionC(768, 192, avg, **b)
        self.Mixed_7a = FastInceptionD(768, **b)
        self.Mixed_7b = FastInceptionE(1280, avg, **b)
        self.Mixed_7c = FastInceptionE(2048, MAX_3X3 if fid else AVG_3X3, **b)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(2048, num_classes)
        if init_weights:
            # torchvision's initialisation: truncated normal (std 0.1) convs and classifier, BatchNorm 1 and 0
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.trunc_normal_(m.weight, mean=0.0, std=0.1, a=-2, b=2)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)

    def _transform_input(self, x: torch.Tensor) -> torch.Tensor:
        # ImageNet normalisation (mean, std per channel) undone, then (x - 0.5) / 0.5, as torchvision does
        mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        return torch.cat([x[:, c : c + 1] * (std[c] / 0.5) + (mean[c] - 0.5) / 0.5 for c in range(3)], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.transform_input:
            x = self._transform_input(x)
        x = self.maxpool1(self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x))))
        x = self.maxpool2(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)))
        for name in V3_BLOCK_KINDS:
            x = getattr(self, name)(x)
        return self.fc(torch.flatten(self.dropout(self.avgpool(x)), 1))


def inception_v3(num_classes: int = 1000, **kwargs) -> InceptionV3:
    """Inception-v3 on fused blocks, torchvision's layout and state_dict (see ``InceptionV3``)."""
    return InceptionV3(num_classes, **kwargs)


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
