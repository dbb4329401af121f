"""Inception-v3 as torchvision builds it (and the FID network's variant), from fused blocks."""
from __future__ import annotations

import torch
from torch import nn

from ..blocks.programs import AVG_3X3, AVG_3X3_EXCLUDE_PAD, MAX_3X3, V3_BLOCK_KINDS, V3_STEM
from ..v3_blocks import ConvBN, FastInceptionA, FastInceptionB, FastInceptionC, FastInceptionD, FastInceptionE


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
