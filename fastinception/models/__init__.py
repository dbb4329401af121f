"""Whole networks on fused blocks: d2l's GoogLeNet, torchvision's Inception-v3, pretrainedmodels' BN-Inception and
timm's Inception-v4 and Inception-ResNet-v2, each with its source's module names and state_dict."""
from .bn_inception import BN_INCEPTION_UNITS, BNInception, bn_inception
from .googlenet import GOOGLENET_BLOCKS, googlenet, googlenet_imagenet
from .inception_resnet_v2 import InceptionResnetV2, inception_resnet_v2
from .inception_v3 import InceptionV3, inception_v3
from .inception_v4 import InceptionV4, inception_v4
from .timm_blocks import TimmBlock

__all__ = [
    "BNInception", "BN_INCEPTION_UNITS", "GOOGLENET_BLOCKS", "InceptionResnetV2", "InceptionV3", "InceptionV4",
    "TimmBlock", "bn_inception", "googlenet", "googlenet_imagenet", "inception_resnet_v2", "inception_v3",
    "inception_v4",
]
