"""fastinception: fused Triton kernels for the GoogLeNet/Inception block, as a drop-in PyTorch layer."""
from .conversion_report import ConversionReport
from .convert import convert
from .functional import inception
from .module import FastInception
from .params import BlockParams
from .reference import GOOGLENET_BLOCKS, Inception, googlenet, googlenet_imagenet
from .spec import InceptionSpec

__all__ = [
    "BlockParams",
    "ConversionReport",
    "FastInception",
    "GOOGLENET_BLOCKS",
    "Inception",
    "InceptionSpec",
    "convert",
    "googlenet",
    "googlenet_imagenet",
    "inception",
]
__version__ = "0.1.0"
