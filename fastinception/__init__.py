"""fastinception: fused Triton kernels for the GoogLeNet/Inception block, as a drop-in PyTorch layer."""
from .convert import ConversionReport, convert
from .functional import inception
from .layer import FastInception
from .models import (
    GOOGLENET_BLOCKS,
    BNInception,
    InceptionV3,
    bn_inception,
    googlenet,
    googlenet_imagenet,
    inception_v3,
)
from .params import BlockParams
from .program import BlockProgram
from .program_block import ProgramBlock
from .reference import Inception
from .spec import InceptionSpec

__all__ = [
    "BNInception",
    "BlockParams",
    "BlockProgram",
    "ConversionReport",
    "FastInception",
    "GOOGLENET_BLOCKS",
    "Inception",
    "InceptionSpec",
    "InceptionV3",
    "ProgramBlock",
    "bn_inception",
    "convert",
    "googlenet",
    "googlenet_imagenet",
    "inception",
    "inception_v3",
]
__version__ = "0.1.0"
