"""convert() on torchvision-shaped GoogLeNet blocks: BatchNorm folding, the report, and the blocks it must skip."""
import copy
import re

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_close
from torch import nn

from fastinception import ConversionReport, FastInception, convert
from fastinception.convert.torchvision import torchvision_spec_of


# A structural replica of torchvision's GoogLeNet (same module names, shapes and forward), with no torchvision
# import: convert must recognise it by structure alone.
class BasicConv2d(nn.Module):
    def __init__(self, in_channels, out_channels, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)), inplace=True)


class TVInception(nn.Module):
    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1), BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1)
        )
        # torchvision's "5x5" branch uses a 3x3 kernel.
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1), BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1)
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1),
        )

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    def __init__(self, in_channels, num_classes):
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x):
        x = torch.flatten(self.conv(F.adaptive_avg_pool2d(x, (4, 4))), 1)
        return self.fc2(F.dropout(F.relu(self.fc1(x)), 0.7, training=self.training))


class TVGoogLeNet(nn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = TVInception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = TVInception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = TVInception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = TVInception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = TVInception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = TVInception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = TVInception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = TVInception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = TVInception(832, 384, 192, 384, 48, 128, 128)
        self.aux1 = InceptionAux(512, num_classes)
        self.aux2 = InceptionAux(528, num_classes)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=0.2)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x):
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if self.training else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))
        return (x, aux2, aux1) if self.training else x


BLOCK_NAMES = [f"inception{n}" for n in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")]


def randomise_batchnorms(model: nn.Module, seed: int) -> None:
    """Statistics and affine parameters far from the defaults, so a wrong fold shows in the output."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.25)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.2)


def small_block() -> TVInception:
    torch.manual_seed(0)
    block = TVInception(6, 3, 4, 5, 2, 3, 2)
    randomise_batchnorms(block, seed=1)
    return block.eval()


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
