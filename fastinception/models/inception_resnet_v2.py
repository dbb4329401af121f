"""Inception-ResNet-v2 as timm 1.0.31 builds it (``timm.create_model("inception_resnet_v2")``), from fused blocks."""
from __future__ import annotations

import torch
from torch import nn

from ..blocks.programs import INCEPTION_RESNET_V2_BLOCKS
from ..functional import check_backend
from ..v3_blocks import ConvBN
from .timm_blocks import TimmBlock


class InceptionResnetV2(nn.Module):
    """timm's ``InceptionResnetV2``: the same module names and state_dict (``conv2d_1a`` .., ``mixed_5b``,
    ``repeat.0`` .., ``block8``, ``conv2d_7b``, ``classif``), so timm's weights load as they are, and the same
    forward. Its 43 blocks are fused (``TimmBlock``, on ``backend``; the residual blocks add ``x + scale * conv2d``
    of their branches, the last ``block8`` with scale 1 and no ReLU, as timm's); the stem convs and pools,
    ``conv2d_7b`` and the head are PyTorch modules. Initialised as timm leaves it (PyTorch's defaults)."""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0, *,
                 backend: str = "auto"):
        super().__init__()
        check_backend(backend)
        self.num_classes = num_classes
        self.num_features = 1536
        blocks = {name: TimmBlock(program, backend=backend)
                  for name, (program, _) in INCEPTION_RESNET_V2_BLOCKS.items()}
        self.conv2d_1a = ConvBN(in_chans, 32, 3, stride=2)
        self.conv2d_2a = ConvBN(32, 32, 3)
        self.conv2d_2b = ConvBN(32, 64, 3, padding=1)
        self.maxpool_3a = nn.MaxPool2d(3, stride=2)
        self.conv2d_3b = ConvBN(64, 80, 1)
        self.conv2d_4a = ConvBN(80, 192, 3)
        self.maxpool_5a = nn.MaxPool2d(3, stride=2)
        self.mixed_5b = blocks["mixed_5b"]
        self.repeat = nn.Sequential(*(blocks[f"repeat.{i}"] for i in range(10)))
        self.mixed_6a = blocks["mixed_6a"]
        self.repeat_1 = nn.Sequential(*(blocks[f"repeat_1.{i}"] for i in range(20)))
        self.mixed_7a = blocks["mixed_7a"]
        self.repeat_2 = nn.Sequential(*(blocks[f"repeat_2.{i}"] for i in range(9)))
        self.block8 = blocks["block8"]
        self.conv2d_7b = ConvBN(2080, self.num_features, 1)
        self.global_pool = nn.AdaptiveAvgPool2d(1)  # timm's SelectAdaptivePool2d("avg") without its flatten
        self.head_drop = nn.Dropout(drop_rate)
        self.classif = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2d_2b(self.conv2d_2a(self.conv2d_1a(x)))
        x = self.conv2d_4a(self.conv2d_3b(self.maxpool_3a(x)))
        x = self.repeat(self.mixed_5b(self.maxpool_5a(x)))
        x = self.repeat_1(self.mixed_6a(x))
        x = self.block8(self.repeat_2(self.mixed_7a(x)))
        return self.conv2d_7b(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(torch.flatten(self.global_pool(x), 1))
        return x if pre_logits else self.classif(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def inception_resnet_v2(num_classes: int = 1000, **kwargs) -> InceptionResnetV2:
    """Inception-ResNet-v2 on fused blocks, timm's layout and state_dict (see ``InceptionResnetV2``)."""
    return InceptionResnetV2(num_classes, **kwargs)
