"""Inception-v4 as timm 1.0.31 builds it (``timm.create_model("inception_v4")``), from fused blocks."""
from __future__ import annotations

import torch
from torch import nn

from ..blocks.programs import INCEPTION_V4_BLOCKS
from ..functional import check_backend
from ..v3_blocks import ConvBN
from .timm_blocks import TimmBlock


class InceptionV4(nn.Module):
    """timm's ``InceptionV4``: the same module names and state_dict (``features.0`` .. ``features.21``,
    ``last_linear``), so timm's weights load as they are, and the same forward (``forward_features``, then the
    average pool, dropout and ``last_linear``). ``features.3`` .. ``features.21`` are fused blocks (``TimmBlock``,
    on ``backend``: ``"auto"`` runs the Triton kernels on CUDA in eval mode); the three stem convs and the head
    are PyTorch modules. Initialised as timm leaves it (PyTorch's defaults)."""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0, *,
                 backend: str = "auto"):
        super().__init__()
        check_backend(backend)
        self.num_classes = num_classes
        self.num_features = 1536
        stem = [ConvBN(in_chans, 32, 3, stride=2), ConvBN(32, 32, 3), ConvBN(32, 64, 3, padding=1)]
        blocks = [TimmBlock(program, backend=backend) for program, _ in INCEPTION_V4_BLOCKS.values()]
        self.features = nn.Sequential(*stem, *blocks)
        self.global_pool = nn.AdaptiveAvgPool2d(1)  # timm's SelectAdaptivePool2d("avg") without its flatten
        self.head_drop = nn.Dropout(drop_rate)
        self.last_linear = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(torch.flatten(self.global_pool(x), 1))
        return x if pre_logits else self.last_linear(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def inception_v4(num_classes: int = 1000, **kwargs) -> InceptionV4:
    """Inception-v4 on fused blocks, timm's layout and state_dict (see ``InceptionV4``)."""
    return InceptionV4(num_classes, **kwargs)
