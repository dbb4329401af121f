"""Whole networks on fused blocks: d2l's GoogLeNet, torchvision's Inception-v3 and pretrainedmodels' BN-Inception,
each with its source's module names and state_dict."""
from .bn_inception import BN_INCEPTION_UNITS, BNInception, bn_inception
from .googlenet import GOOGLENET_BLOCKS, googlenet, googlenet_imagenet
from .inception_v3 import InceptionV3, inception_v3

__all__ = [
    "BNInception", "BN_INCEPTION_UNITS", "GOOGLENET_BLOCKS", "InceptionV3", "bn_inception", "googlenet",
    "googlenet_imagenet", "inception_v3",
]
