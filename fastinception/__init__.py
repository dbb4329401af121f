"""fastinception: fused Triton kernels for the GoogLeNet/Inception block, as a drop-in PyTorch layer."""
from .blocks.params import BlockParams
from .blocks.program import BlockProgram
from .blocks.spec import InceptionSpec
from .convert import ConversionReport, convert
from .functional import inception
from .layer import FastInception
from .models import (
    GOOGLENET_BLOCKS,
    BNInception,
    InceptionResnetV2,
    InceptionV3,
    InceptionV4,
    bn_inception,
    googlenet,
    googlenet_imagenet,
    inception_resnet_v2,
    inception_v3,
    inception_v4,
)
from .program_block import ProgramBlock
from .reference.d2l import Inception

__all__ = [
    "BNInception",
    "BlockParams",
    "BlockProgram",
    "ConversionReport",
    "FastInception",
    "GOOGLENET_BLOCKS",
    "Inception",
    "InceptionSpec",
    "InceptionResnetV2",
    "InceptionV3",
    "InceptionV4",
    "ProgramBlock",
    "bn_inception",
    "convert",
    "googlenet",
    "googlenet_imagenet",
    "inception",
    "inception_resnet_v2",
    "inception_v3",
    "inception_v4",
]
__version__ = "0.1.0"
