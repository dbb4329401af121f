"""convert() on torchvision-shaped GoogLeNet blocks: BatchNorm folding, the report, and the blocks it must skip."""
import copy
import re

import pytest
import torch
from torch import nn

from fastinception import ConversionReport, FastInception, convert
from fastinception.convert.torchvision import torchvision_spec_of

from helpers import BasicConv2d, TVGoogLeNet, TVInception, assert_close, randomise_batchnorms, small_block

BLOCK_NAMES = [f"inception{n}" for n in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")]


def test_torchvision_googlenet_converts_and_gives_the_same_logits():
    torch.manual_seed(0)
    net = TVGoogLeNet()
    randomise_batchnorms(net, seed=0)
    net.eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        want = net(x)
    assert want.std() > 1e-2, "logits too flat for the comparison to mean anything"
    converted, report = convert(copy.deepcopy(net), report=True)
    assert isinstance(report, ConversionReport)
    assert report.converted_names == BLOCK_NAMES and report.skipped == ()
    assert all(b.style == "torchvision" and b.spec.k2 == 3 and b.spec.k3 == 3 for b in report.converted)
    assert sum(isinstance(m, FastInception) for m in converted.modules()) == 9
    assert isinstance(converted.conv1, BasicConv2d) and isinstance(converted.aux1.conv, BasicConv2d)
    assert not converted.inception3a.training
    with torch.no_grad():
        got = converted(x)
    # Folding rounds each folded weight once to fp32 (relative 6e-8); through 9 blocks and the head that stays
    # well inside the fp32 tolerance of 1e-5.
    assert_close(got, want, torch.float32, "logits")


def test_folded_block_matches_in_float64_with_conv_bias_and_other_eps():
    block = small_block()
    block.branch2[1].conv = nn.Conv2d(4, 5, kernel_size=3, padding=1, bias=True)  # a bias folds as well
    block.branch3[0].bn.eps = 1e-5  # each BatchNorm's own eps is used
    randomise_batchnorms(block, seed=2)
    block = block.double().eval()
    x = torch.randn(2, 6, 7, 5, dtype=torch.float64)
    fast = convert(copy.deepcopy(block))
    assert isinstance(fast, FastInception) and fast.p2_2.weight.dtype == torch.float64
    assert_close(fast(x), block(x), torch.float64, "folded block")


def test_train_mode_is_refused_before_anything_changes():
    net = nn.Sequential(small_block(), small_block()).train()
    with pytest.raises(RuntimeError, match=r"BatchNorm in training mode in 0 \(branch1, .*call model.eval\(\)"):
        convert(net)
    assert isinstance(net[0], TVInception) and isinstance(net[1], TVInception)


def _with(change):
    block = small_block()
    change(block)
    return block


class SiLUConv(nn.Module):
    """A conv+BatchNorm unit with another activation held as a submodule."""

    def __init__(self, unit):
        super().__init__()
        self.conv, self.bn, self.act = unit.conv, unit.bn, nn.SiLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


@pytest.mark.parametrize(
    "change, reason",
    [
        (lambda b: setattr(b.branch2[1].conv, "stride", (2, 2)),
         r"branch2\[1\]\.conv: stride \(2, 2\), expected \(1, 1\)"),
        (lambda b: setattr(b.branch3[1].conv, "padding", (0, 0)),
         r"branch3\[1\]\.conv: padding \(0, 0\), expected \(1, 1\)"),
        (lambda b: b.branch4.__setitem__(0, nn.MaxPool2d(3, stride=2, padding=1)),
         r"branch4\[0\]: max-pool stride \(2, 2\)"),
        (lambda b: b.branch4.__setitem__(0, nn.AvgPool2d(3, 1, 1)), r"branch4\[0\]: AvgPool2d, expected nn.MaxPool2d"),
        (lambda b: setattr(b, "branch1", SiLUConv(b.branch1)), r"branch1: unexpected submodule\(s\) act \(SiLU\)"),
        (lambda b: setattr(b.branch2[0], "bn", nn.BatchNorm2d(4, track_running_stats=False)),
         r"branch2\[0\]\.bn: no running statistics"),
        (lambda b: setattr(b.branch2[0], "bn", nn.GroupNorm(2, 4)),
         r"branch2\[0\]\.bn: GroupNorm, expected nn.BatchNorm2d"),
        (lambda b: setattr(b, "se", nn.Sigmoid()), r"block: unexpected submodule\(s\) se \(Sigmoid\)"),
        (lambda b: b.branch3.append(nn.Dropout()), r"branch3: Sequential of 3, expected nn.Sequential of 2 modules"),
    ],
    ids=["stride", "padding", "pool-stride", "avg-pool", "activation", "batch-stats", "groupnorm", "extra-module",
         "extra-layer"],
)
def test_near_misses_are_left_alone_and_reported(change, reason):
    block = _with(change)
    model = nn.Sequential(nn.Identity(), block)
    out, report = convert(model, report=True)
    assert out is model and model[1] is block
    assert report.converted == ()
    assert [(s.name, s.style) for s in report.skipped] == [("1", "torchvision")]
    assert re.search(reason, report.skipped[0].reason), report.skipped[0].reason
    assert torchvision_spec_of(block) is None


def test_d2l_near_miss_is_reported_next_to_converted_blocks():
    from fastinception import Inception

    good = Inception(8, 4, (3, 5), (2, 3), 2)
    bad = Inception(8, 4, (3, 5), (2, 3), 2)
    bad.p3_2 = nn.Conv2d(2, 3, kernel_size=5, padding=1)
    model = nn.Sequential(good, nn.Sequential(bad, small_block()))
    out, report = convert(model, report=True)
    assert report.converted_names == ["0", "1.1"]
    skipped = [(s.name, s.style, s.reason) for s in report.skipped]
    assert skipped == [("1.0", "d2l", "p3_2: padding (1, 1), expected (2, 2)")]
    assert isinstance(model[0], FastInception) and model[1][0] is bad and isinstance(model[1][1], FastInception)
    text = str(report)
    assert "converted 2 block(s), left 1 look-alike(s) alone" in text and "skipped   1.0 (d2l)" in text


def test_block_shared_under_two_names_stays_shared():
    block = small_block()
    model = nn.Sequential(block, block)
    convert(model)
    assert isinstance(model[0], FastInception) and model[0] is model[1]


def test_convert_returns_the_model_without_report():
    model = nn.Sequential(small_block())
    assert convert(model) is model and isinstance(model[0], FastInception)
