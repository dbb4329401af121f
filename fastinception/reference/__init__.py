"""The oracles: plain PyTorch definitions that the fused blocks are checked against, never a fast path. d2l's
GoogLeNet block (``d2l``), torchvision's Inception-v3 blocks and pytorch-fid's variants (``inception_v3``), timm's
Inception-v4 and Inception-ResNet-v2 blocks as timm's forward runs them (``timm``), and the op-by-op interpreter of a
block program (``program``)."""
from .d2l import Inception

__all__ = ["Inception"]
