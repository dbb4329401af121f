"""The programs of every Inception block type: GoogLeNet (v1), BN-Inception, Inception-v3 A-E and the FID
network's variants, and Inception-v4 / Inception-ResNet blocks. Each conv is conv + bias + ReLU, a network's
BatchNorm being folded into the conv (torchvision's ``BasicConv2d`` has no conv bias; BN-Inception has both).

Channel counts and pools follow torchvision ``models/inception.py``, pytorch-fid ``inception.py`` (whose
``FIDInceptionA``, ``C``, ``E_1`` and ``E_2`` differ from torchvision's blocks inside ``forward`` only: their average
pools exclude the padding, and the last E block max-pools), the BN-Inception of ``pretrainedmodels``
(``bninception.py``) and timm's ``inception_v4.py`` / ``inception_resnet_v2.py``.
"""
from __future__ import annotations

from .program import BlockProgram, Branch, Conv, Pool, Residual

# The pool branches' pools: 3x3, stride 1, padding 1.
AVG_3X3 = Pool("avg", 3, 1, 1)                              # torchvision v3, timm
AVG_3X3_EXCLUDE_PAD = Pool("avg", 3, 1, 1, count_include_pad=False)  # FID A, C, E_1; v4
MAX_3X3 = Pool("max", 3, 1, 1)                              # GoogLeNet; FID E_2
# The reductions' pass-through pool: 3x3, stride 2, no padding.
MAX_3X3_S2 = Pool("max", 3, 2, 0)


def _conv(out, kernel=1, stride=1, padding=0, relu=True) -> Conv:
    return Conv(out, kernel, stride, padding, relu)


def _1x7(out) -> Conv:
    return Conv(out, (1, 7), 1, (0, 3))


def _7x1(out) -> Conv:
    return Conv(out, (7, 1), 1, (3, 0))


def _1x3(out) -> Conv:
    return Conv(out, (1, 3), 1, (0, 1))


def _3x1(out) -> Conv:
    return Conv(out, (3, 1), 1, (1, 0))


# ---------------------------------------------------------------------------------------------
# GoogLeNet (v1)

def googlenet_block(in_channels, c1, c2, c3, c4, k2=3, k3=5, name="") -> BlockProgram:
    """d2l's / the paper's block: 1x1; 1x1 -> k2 x k2; 1x1 -> k3 x k3; 3x3 max-pool -> 1x1
    (``FastInception``'s arguments)."""
    (c2a, c2b), (c3a, c3b) = c2, c3
    return BlockProgram(in_channels, (
        Branch((_conv(c1),)),
        Branch((_conv(c2a), _conv(c2b, k2, 1, k2 // 2))),
        Branch((_conv(c3a), _conv(c3b, k3, 1, k3 // 2))),
        Branch((MAX_3X3, _conv(c4))),
    ), name=name)


# ---------------------------------------------------------------------------------------------
# BN-Inception (Inception-v2): the 5x5 as two 3x3; ceil_mode pools

BN_AVG_3X3 = Pool("avg", 3, 1, 1, ceil_mode=True)
BN_MAX_3X3 = Pool("max", 3, 1, 1, ceil_mode=True)
BN_MAX_3X3_S2 = Pool("max", 3, 2, 0, ceil_mode=True)


def bn_inception_block(in_channels, c1, c3, d3, pool_proj, pool=BN_AVG_3X3, name="") -> BlockProgram:
    """1x1 -> c1; 1x1 -> c3[0] -> 3x3 -> c3[1]; 1x1 -> d3[0] -> 3x3 -> d3[1] -> 3x3 -> d3[1]; pool -> 1x1."""
    return BlockProgram(in_channels, (
        Branch((_conv(c1),)),
        Branch((_conv(c3[0]), _conv(c3[1], 3, 1, 1))),
        Branch((_conv(d3[0]), _conv(d3[1], 3, 1, 1), _conv(d3[1], 3, 1, 1))),
        Branch((pool, _conv(pool_proj))),
    ), name=name)


def bn_inception_reduction(in_channels, c3, d3, name="") -> BlockProgram:
    """1x1 -> 3x3/s2/p1; 1x1 -> 3x3/p1 -> 3x3/s2/p1; 3x3/s2 max-pool (ceil_mode) passed through."""
    return BlockProgram(in_channels, (
        Branch((_conv(c3[0]), _conv(c3[1], 3, 2, 1))),
        Branch((_conv(d3[0]), _conv(d3[1], 3, 1, 1), _conv(d3[1], 3, 2, 1))),
        Branch((BN_MAX_3X3_S2,)),
    ), name=name)


# name -> (program, input side) at 224x224 images.
BN_INCEPTION_BLOCKS = {
    "3a": (bn_inception_block(192, 64, (64, 64), (64, 96), 32, name="3a"), 28),
    "3b": (bn_inception_block(256, 64, (64, 96), (64, 96), 64, name="3b"), 28),
    "3c": (bn_inception_reduction(320, (128, 160), (64, 96), name="3c"), 28),
    "4a": (bn_inception_block(576, 224, (64, 96), (96, 128), 128, name="4a"), 14),
    "4b": (bn_inception_block(576, 192, (96, 128), (96, 128), 128, name="4b"), 14),
    "4c": (bn_inception_block(576, 160, (128, 160), (128, 160), 128, name="4c"), 14),
    "4d": (bn_inception_block(608, 96, (128, 192), (160, 192), 128, name="4d"), 14),
    "4e": (bn_inception_reduction(608, (128, 192), (192, 256), name="4e"), 14),
    "5a": (bn_inception_block(1056, 352, (192, 320), (160, 224), 128, name="5a"), 7),
    "5b": (bn_inception_block(1024, 352, (192, 320), (192, 224), 128, pool=BN_MAX_3X3, name="5b"), 7),
}


# ---------------------------------------------------------------------------------------------
# Inception-v3 (torchvision, timm) and the FID network (pytorch-fid)

def inception_v3_a(in_channels, pool_features, pool=AVG_3X3, name="") -> BlockProgram:
    """torchvision ``InceptionA``; pytorch-fid's ``FIDInceptionA`` with ``pool=AVG_3X3_EXCLUDE_PAD``."""
    return BlockProgram(in_channels, (
        Branch((_conv(64),)),
        Branch((_conv(48), _conv(64, 5, 1, 2))),
        Branch((_conv(64), _conv(96, 3, 1, 1), _conv(96, 3, 1, 1))),
        Branch((pool, _conv(pool_features))),
    ), name=name)


def inception_v3_b(in_channels, name="") -> BlockProgram:
    """torchvision ``InceptionB`` (Mixed_6a): 35 -> 17."""
    return BlockProgram(in_channels, (
        Branch((_conv(384, 3, 2),)),
        Branch((_conv(64), _conv(96, 3, 1, 1), _conv(96, 3, 2))),
        Branch((MAX_3X3_S2,)),
    ), name=name)


def inception_v3_c(in_channels, channels_7x7, pool=AVG_3X3, name="") -> BlockProgram:
    """torchvision ``InceptionC``; pytorch-fid's ``FIDInceptionC`` with ``pool=AVG_3X3_EXCLUDE_PAD``."""
    c7 = channels_7x7
    return BlockProgram(in_channels, (
        Branch((_conv(192),)),
        Branch((_conv(c7), _1x7(c7), _7x1(192))),
        Branch((_conv(c7), _7x1(c7), _1x7(c7), _7x1(c7), _1x7(192))),
        Branch((pool, _conv(192))),
    ), name=name)


def inception_v3_d(in_channels, name="") -> BlockProgram:
    """torchvision ``InceptionD`` (Mixed_7a): 17 -> 8."""
    return BlockProgram(in_channels, (
        Branch((_conv(192), _conv(320, 3, 2))),
        Branch((_conv(192), _1x7(192), _7x1(192), _conv(192, 3, 2))),
        Branch((MAX_3X3_S2,)),
    ), name=name)


def inception_v3_e(in_channels, pool=AVG_3X3, name="") -> BlockProgram:
    """torchvision ``InceptionE``; pytorch-fid's ``FIDInceptionE_1`` with ``pool=AVG_3X3_EXCLUDE_PAD`` and
    ``FIDInceptionE_2`` with ``pool=MAX_3X3``."""
    return BlockProgram(in_channels, (
        Branch((_conv(320),)),
        Branch((_conv(384),), split=(_1x3(384), _3x1(384))),
        Branch((_conv(448), _conv(384, 3, 1, 1)), split=(_1x3(384), _3x1(384))),
        Branch((pool, _conv(192))),
    ), name=name)


# Inception-v3's stem (torchvision's Inception3, pytorch-fid's network): unit -> (out, in, kernel, stride, padding);
# max-pools (3x3, stride 2) follow Conv2d_2b_3x3 and Conv2d_4a_3x3.
V3_STEM = {
    "Conv2d_1a_3x3": (32, 3, 3, 2, 0),
    "Conv2d_2a_3x3": (32, 32, 3, 1, 0),
    "Conv2d_2b_3x3": (64, 32, 3, 1, 1),
    "Conv2d_3b_1x1": (80, 64, 1, 1, 0),
    "Conv2d_4a_3x3": (192, 80, 3, 1, 0),
}

# The conv+BatchNorm units of each v3 block type, named and ordered as torchvision defines them: the order of each
# program's conv slots, and of the weights beside it.
V3_UNIT_NAMES = {
    "InceptionA": ("branch1x1", "branch5x5_1", "branch5x5_2", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3",
                   "branch_pool"),
    "InceptionB": ("branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"),
    "InceptionC": ("branch1x1", "branch7x7_1", "branch7x7_2", "branch7x7_3", "branch7x7dbl_1", "branch7x7dbl_2",
                   "branch7x7dbl_3", "branch7x7dbl_4", "branch7x7dbl_5", "branch_pool"),
    "InceptionD": ("branch3x3_1", "branch3x3_2", "branch7x7x3_1", "branch7x7x3_2", "branch7x7x3_3", "branch7x7x3_4"),
    "InceptionE": ("branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_1", "branch3x3dbl_2",
                   "branch3x3dbl_3a", "branch3x3dbl_3b", "branch_pool"),
}

# The blocks of Inception3 (torchvision's, pytorch-fid's), in order, and the type of each (its unit names above)
V3_BLOCK_KINDS = {
    "Mixed_5b": "InceptionA", "Mixed_5c": "InceptionA", "Mixed_5d": "InceptionA", "Mixed_6a": "InceptionB",
    "Mixed_6b": "InceptionC", "Mixed_6c": "InceptionC", "Mixed_6d": "InceptionC", "Mixed_6e": "InceptionC",
    "Mixed_7a": "InceptionD", "Mixed_7b": "InceptionE", "Mixed_7c": "InceptionE",
}

# name -> (program, input side) at 299x299 images: torchvision's Inception3 and pytorch-fid's FID network.
INCEPTION_V3_BLOCKS = {
    "Mixed_5b": (inception_v3_a(192, 32, name="Mixed_5b"), 35),
    "Mixed_5c": (inception_v3_a(256, 64, name="Mixed_5c"), 35),
    "Mixed_5d": (inception_v3_a(288, 64, name="Mixed_5d"), 35),
    "Mixed_6a": (inception_v3_b(288, name="Mixed_6a"), 35),
    "Mixed_6b": (inception_v3_c(768, 128, name="Mixed_6b"), 17),
    "Mixed_6c": (inception_v3_c(768, 160, name="Mixed_6c"), 17),
    "Mixed_6d": (inception_v3_c(768, 160, name="Mixed_6d"), 17),
    "Mixed_6e": (inception_v3_c(768, 192, name="Mixed_6e"), 17),
    "Mixed_7a": (inception_v3_d(768, name="Mixed_7a"), 17),
    "Mixed_7b": (inception_v3_e(1280, name="Mixed_7b"), 8),
    "Mixed_7c": (inception_v3_e(2048, name="Mixed_7c"), 8),
}

FID_INCEPTION_BLOCKS = {
    "Mixed_5b": (inception_v3_a(192, 32, AVG_3X3_EXCLUDE_PAD, name="Mixed_5b"), 35),
    "Mixed_5c": (inception_v3_a(256, 64, AVG_3X3_EXCLUDE_PAD, name="Mixed_5c"), 35),
    "Mixed_5d": (inception_v3_a(288, 64, AVG_3X3_EXCLUDE_PAD, name="Mixed_5d"), 35),
    "Mixed_6a": INCEPTION_V3_BLOCKS["Mixed_6a"],
    "Mixed_6b": (inception_v3_c(768, 128, AVG_3X3_EXCLUDE_PAD, name="Mixed_6b"), 17),
    "Mixed_6c": (inception_v3_c(768, 160, AVG_3X3_EXCLUDE_PAD, name="Mixed_6c"), 17),
    "Mixed_6d": (inception_v3_c(768, 160, AVG_3X3_EXCLUDE_PAD, name="Mixed_6d"), 17),
    "Mixed_6e": (inception_v3_c(768, 192, AVG_3X3_EXCLUDE_PAD, name="Mixed_6e"), 17),
    "Mixed_7a": INCEPTION_V3_BLOCKS["Mixed_7a"],
    "Mixed_7b": (inception_v3_e(1280, AVG_3X3_EXCLUDE_PAD, name="Mixed_7b"), 8),
    "Mixed_7c": (inception_v3_e(2048, MAX_3X3, name="Mixed_7c"), 8),
}


# ---------------------------------------------------------------------------------------------
# Inception-v4 and Inception-ResNet-v2 (timm 1.0.31's ``inception_v4.py`` and ``inception_resnet_v2.py``): every
# conv is timm's ``ConvNormAct`` (conv without bias, BatchNorm eps 1e-3, ReLU), average pools exclude the padding,
# stride-2 convs and pools are unpadded.

def inception_v4_mixed_3a(in_channels=64, name="") -> BlockProgram:
    """timm ``Mixed3a``: the stride-2 max-pool first, then a 3x3 stride-2 conv."""
    return BlockProgram(in_channels, (
        Branch((MAX_3X3_S2,)),
        Branch((_conv(96, 3, 2),)),
    ), name=name)


def inception_v4_mixed_4a(in_channels=160, name="") -> BlockProgram:
    """timm ``Mixed4a``: both branches end in an unpadded 3x3 (the side shrinks by 2)."""
    return BlockProgram(in_channels, (
        Branch((_conv(64), _conv(96, 3))),
        Branch((_conv(64), _1x7(64), _7x1(64), _conv(96, 3))),
    ), name=name)


def inception_v4_mixed_5a(in_channels=192, name="") -> BlockProgram:
    """timm ``Mixed5a``: a 3x3 stride-2 conv first, then the stride-2 max-pool."""
    return BlockProgram(in_channels, (
        Branch((_conv(192, 3, 2),)),
        Branch((MAX_3X3_S2,)),
    ), name=name)


def inception_v4_a(in_channels=384, name="") -> BlockProgram:
    """timm ``InceptionA``."""
    return BlockProgram(in_channels, (
        Branch((_conv(96),)),
        Branch((_conv(64), _conv(96, 3, 1, 1))),
        Branch((_conv(64), _conv(96, 3, 1, 1), _conv(96, 3, 1, 1))),
        Branch((AVG_3X3_EXCLUDE_PAD, _conv(96))),
    ), name=name)


def inception_v4_reduction_a(in_channels=384, name="") -> BlockProgram:
    """timm ``ReductionA``."""
    return BlockProgram(in_channels, (
        Branch((_conv(384, 3, 2),)),
        Branch((_conv(192), _conv(224, 3, 1, 1), _conv(256, 3, 2))),
        Branch((MAX_3X3_S2,)),
    ), name=name)


def inception_v4_b(in_channels=1024, name="") -> BlockProgram:
    """timm ``InceptionB``."""
    return BlockProgram(in_channels, (
        Branch((_conv(384),)),
        Branch((_conv(192), _1x7(224), _7x1(256))),
        Branch((_conv(192), _7x1(192), _1x7(224), _7x1(224), _1x7(256))),
        Branch((AVG_3X3_EXCLUDE_PAD, _conv(128))),
    ), name=name)


def inception_v4_reduction_b(in_channels=1024, name="") -> BlockProgram:
    """timm ``ReductionB``."""
    return BlockProgram(in_channels, (
        Branch((_conv(192), _conv(192, 3, 2))),
        Branch((_conv(256), _1x7(256), _7x1(320), _conv(320, 3, 2))),
        Branch((MAX_3X3_S2,)),
    ), name=name)


def inception_v4_c(in_channels=1536, name="") -> BlockProgram:
    """timm ``InceptionC``: both spatial branches end in a 1x3 / 3x1 split."""
    return BlockProgram(in_channels, (
        Branch((_conv(256),)),
        Branch((_conv(384),), split=(_1x3(256), _3x1(256))),
        Branch((_conv(384), _3x1(448), _1x3(512)), split=(_1x3(256), _3x1(256))),
        Branch((AVG_3X3_EXCLUDE_PAD, _conv(256))),
    ), name=name)


def inception_resnet_mixed_5b(in_channels=192, name="") -> BlockProgram:
    """timm ``Mixed_5b`` of Inception-ResNet-v2 (v3's A block with other widths, its average excluding the
    padding)."""
    return BlockProgram(in_channels, (
        Branch((_conv(96),)),
        Branch((_conv(48), _conv(64, 5, 1, 2))),
        Branch((_conv(64), _conv(96, 3, 1, 1), _conv(96, 3, 1, 1))),
        Branch((AVG_3X3_EXCLUDE_PAD, _conv(64))),
    ), name=name)


def inception_resnet_block35(in_channels=320, scale=0.17, name="") -> BlockProgram:
    """timm ``Block35``: three branches, then x + scale * conv1x1(concat), then ReLU."""
    return BlockProgram(in_channels, (
        Branch((_conv(32),)),
        Branch((_conv(32), _conv(32, 3, 1, 1))),
        Branch((_conv(32), _conv(48, 3, 1, 1), _conv(64, 3, 1, 1))),
    ), residual=Residual(scale), name=name)


def inception_resnet_mixed_6a(in_channels=320, name="") -> BlockProgram:
    """timm ``Mixed_6a`` of Inception-ResNet-v2: 35 -> 17."""
    return BlockProgram(in_channels, (
        Branch((_conv(384, 3, 2),)),
        Branch((_conv(256), _conv(256, 3, 1, 1), _conv(384, 3, 2))),
        Branch((MAX_3X3_S2,)),
    ), name=name)


def inception_resnet_block17(in_channels=1088, scale=0.10, name="") -> BlockProgram:
    """timm ``Block17``: 1x1; 1x1 -> 1x7 -> 7x1; then x + scale * conv1x1(concat), then ReLU."""
    return BlockProgram(in_channels, (
        Branch((_conv(192),)),
        Branch((_conv(128), _1x7(160), _7x1(192))),
    ), residual=Residual(scale), name=name)


def inception_resnet_mixed_7a(in_channels=1088, name="") -> BlockProgram:
    """timm ``Mixed_7a`` of Inception-ResNet-v2: 17 -> 8."""
    return BlockProgram(in_channels, (
        Branch((_conv(256), _conv(384, 3, 2))),
        Branch((_conv(256), _conv(288, 3, 2))),
        Branch((_conv(256), _conv(288, 3, 1, 1), _conv(320, 3, 2))),
        Branch((MAX_3X3_S2,)),
    ), name=name)


def inception_resnet_block8(in_channels=2080, scale=0.2, relu=True, name="") -> BlockProgram:
    """timm ``Block8``; the network's last one (``block8``) has scale 1.0 and no ReLU."""
    return BlockProgram(in_channels, (
        Branch((_conv(192),)),
        Branch((_conv(192), _1x3(224), _3x1(256))),
    ), residual=Residual(scale, relu), name=name)


# Each block of timm's networks, by qualified module name, in order: (program, input side) at 299x299 images. The
# programs are named by block type, so the instances of one type share one program (and its cached plans).
INCEPTION_V4_BLOCKS = {
    "features.3": (inception_v4_mixed_3a(name="Mixed3a"), 147),
    "features.4": (inception_v4_mixed_4a(name="Mixed4a"), 73),
    "features.5": (inception_v4_mixed_5a(name="Mixed5a"), 71),
    **{f"features.{i}": (inception_v4_a(name="InceptionA"), 35) for i in range(6, 10)},
    "features.10": (inception_v4_reduction_a(name="ReductionA"), 35),
    **{f"features.{i}": (inception_v4_b(name="InceptionB"), 17) for i in range(11, 18)},
    "features.18": (inception_v4_reduction_b(name="ReductionB"), 17),
    **{f"features.{i}": (inception_v4_c(name="InceptionC"), 8) for i in range(19, 22)},
}

INCEPTION_RESNET_V2_BLOCKS = {
    "mixed_5b": (inception_resnet_mixed_5b(name="Mixed_5b"), 35),
    **{f"repeat.{i}": (inception_resnet_block35(name="Block35"), 35) for i in range(10)},
    "mixed_6a": (inception_resnet_mixed_6a(name="Mixed_6a"), 35),
    **{f"repeat_1.{i}": (inception_resnet_block17(name="Block17"), 17) for i in range(20)},
    "mixed_7a": (inception_resnet_mixed_7a(name="Mixed_7a"), 17),
    **{f"repeat_2.{i}": (inception_resnet_block8(name="Block8"), 8) for i in range(9)},
    "block8": (inception_resnet_block8(scale=1.0, relu=False, name="Block8/last"), 8),
}
