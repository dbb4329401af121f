"""fastinception: fused Triton kernels for the GoogLeNet/Inception block, as a drop-in PyTorch layer."""
from .convert import convert, inception_spec_of
from .functional import inception
from .module import FastInception
from .params import BlockParams
from .reference import GOOGLENET_BLOCKS, Inception, googlenet
from .spec import InceptionSpec

__all__ = [
    "BlockParams",
    "FastInception",
    "GOOGLENET_BLOCKS",
    "Inception",
    "InceptionSpec",
    "convert",
    "googlenet",
    "inception",
    "inception_spec_of",
]
__version__ = "0.1.0"
