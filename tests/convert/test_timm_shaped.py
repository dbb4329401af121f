"""convert() on modules shaped as timm's Inception-v4 and Inception-ResNet-v2 blocks (their children, pools and
scale, and timm's forward; no timm here: tests/convert/test_timm.py runs the real one), and on units whose
BatchNorm carries its ReLU as timm's BatchNormAct2d does."""
import copy
import dataclasses
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fastinception import ProgramBlock, convert, inception_v4
from fastinception.blocks import programs as P
from fastinception.models import TimmBlock

from helpers import TimmShaped, assert_close, make_input, randomise_batchnorms, timm_forward

# block type -> (its program at a small input width, input side)
BLOCKS = {
    "Mixed3a": (P.inception_v4_mixed_3a(8, name="Mixed3a"), 7),
    "Mixed4a": (P.inception_v4_mixed_4a(12, name="Mixed4a"), 6),
    "Mixed5a": (P.inception_v4_mixed_5a(8, name="Mixed5a"), 7),
    "InceptionA": (P.inception_v4_a(12, name="InceptionA"), 5),
    "ReductionA": (P.inception_v4_reduction_a(12, name="ReductionA"), 7),
    "InceptionB": (P.inception_v4_b(12, name="InceptionB"), 5),
    "ReductionB": (P.inception_v4_reduction_b(12, name="ReductionB"), 7),
    "InceptionC": (P.inception_v4_c(12, name="InceptionC"), 4),
    "Mixed_5b": (P.inception_resnet_mixed_5b(12, name="Mixed_5b"), 5),
    "Block35": (P.inception_resnet_block35(12, name="Block35"), 5),
    "Mixed_6a": (P.inception_resnet_mixed_6a(12, name="Mixed_6a"), 7),
    "Block17": (P.inception_resnet_block17(12, name="Block17"), 5),
    "Mixed_7a": (P.inception_resnet_mixed_7a(12, name="Mixed_7a"), 7),
    "Block8": (P.inception_resnet_block8(12, name="Block8"), 4),
    "Block8/last": (P.inception_resnet_block8(12, scale=1.0, relu=False, name="Block8/last"), 4),
}


def _shaped(name, seed=0):
    program, side = BLOCKS[name]
    torch.manual_seed(seed)
    block = TimmBlock(program, backend="torch")
    randomise_batchnorms(block, seed=seed + 1)
    return TimmShaped.of(block).eval(), side


@pytest.mark.parametrize("name", list(BLOCKS))
def test_each_block_type_converts_to_its_program_and_computes_the_same(name):
    shaped, side = _shaped(name)
    model = nn.Sequential(shaped)
    x = make_input((2, BLOCKS[name][0].in_channels, side, side), seed=3)
    with torch.no_grad():
        want = timm_forward(copy.deepcopy(shaped).double(), x.double(), shaped.kind)
    model, report = convert(model, report=True)
    assert report.converted_names == ["0"] and not report.skipped, str(report)
    assert isinstance(model[0], ProgramBlock)
    # the program read from the structure is the catalogue's, named by timm's class
    assert model[0].program == dataclasses.replace(BLOCKS[name][0], name=type(shaped).__name__)
    with torch.no_grad():
        assert_close(model(x), want, torch.float32, name)


@pytest.mark.parametrize("name, change, reason", [
    # the concatenation in the other order than the children are registered
    ("Mixed5a", lambda m: setattr(type(m), "forward", lambda self, x: torch.cat(
        [F.max_pool2d(x, 3, stride=2), self.conv(x)], 1)), "matches none of its candidates"),
    # a scale attribute that the forward does not use
    ("Block17", lambda m: setattr(m, "scale", 0.2), "matches none of its candidates"),
    # an activation after the sum that is not a ReLU
    ("Block35", lambda m: setattr(m, "act", nn.GELU()), "activation GELU, expected one nn.ReLU"),
    # a pool the program cannot state
    ("InceptionA", lambda m: m.branch3.__setitem__(0, nn.LPPool2d(2, 3, 1)), "branch3\\[0\\]: LPPool2d"),
    ("Block8", lambda m: setattr(m, "scale", "0.2"), "residual scale is '0.2'"),
])
def test_a_block_that_differs_is_left_alone_with_the_reason(name, change, reason):
    shaped, side = _shaped(name)
    change(shaped)
    model = nn.Sequential(shaped)
    model, report = convert(model, report=True)
    assert model[0] is shaped and not report.converted
    assert report.skipped_names == ["0"] and report.skipped[0].style == "timm"
    assert re.search(reason, report.skipped[0].reason), report.skipped[0].reason


class BatchNormAct(nn.BatchNorm2d):
    """timm's BatchNormAct2d as it computes: BatchNorm, then ``drop`` and ``act``."""

    def __init__(self, channels, act=None):
        super().__init__(channels, eps=1e-3)
        self.drop = nn.Identity()
        self.act = act if act is not None else nn.ReLU()

    def forward(self, x):
        return self.act(self.drop(super().forward(x)))


class ConvNormAct(nn.Module):
    """timm's ConvNormAct: the ReLU inside the BatchNorm, none in the unit."""

    def __init__(self, unit, act=None):
        super().__init__()
        self.conv = unit.conv
        self.bn = BatchNormAct(unit.conv.out_channels, act)
        self.bn.load_state_dict(unit.bn.state_dict())

    def forward(self, x):
        return self.bn(self.conv(x))


def _with_timm_units(shaped, act=None):
    for sub in list(shaped.modules()):
        for child_name, child in list(sub.named_children()):
            if {n for n, _ in child.named_children()} == {"conv", "bn"}:
                setattr(sub, child_name, ConvNormAct(child, act))
    return shaped


def test_units_whose_batchnorm_carries_the_relu_convert_and_other_activations_do_not():
    shaped, side = _shaped("Block17")
    x = make_input((2, 12, side, side), seed=4)
    timm_units = _with_timm_units(copy.deepcopy(shaped)).eval()
    with torch.no_grad():
        want = timm_units(x)
    model, report = convert(nn.Sequential(timm_units), report=True)
    assert report.converted_names == ["0"], str(report)
    with torch.no_grad():
        assert_close(model(x), want, torch.float32, "Block17 of ConvNormAct units")
    gelu = _with_timm_units(copy.deepcopy(shaped), act=nn.GELU()).eval()
    _, report = convert(nn.Sequential(gelu), report=True)
    assert not report.converted and "branch0.bn: BatchNormAct, expected nn.BatchNorm2d" in report.skipped[0].reason


def test_training_mode_is_refused_before_anything_changes():
    shaped, _ = _shaped("Block35")
    model = nn.Sequential(shaped.train(), _shaped("Mixed5a")[0].eval())
    with pytest.raises(RuntimeError, match=r"BatchNorm in training mode in 0 \(branch0, branch1\[0\], .*"
                                           r"call model.eval\(\) before convert"):
        convert(model)
    assert model[0] is shaped and type(model[1]).__name__ == "Mixed5a"


def test_convert_leaves_inception_v4s_own_fused_blocks_alone():
    model = inception_v4(num_classes=10).eval()
    _, report = convert(model, report=True)
    assert not report.converted and not report.skipped
