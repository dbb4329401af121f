"""convert() on d2l-shaped blocks: whole networks, copies of the d2l class, near misses left alone."""
import copy

import torch
from torch import nn

from fastinception import FastInception, Inception, convert, googlenet

from helpers import D2LInception, assert_close

ARGS = (6, 3, (4, 5), (2, 3), 2)


def test_convert_whole_googlenet_gives_same_logits():
    torch.manual_seed(0)
    net = googlenet().eval()
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        want = net(x)
    converted = convert(copy.deepcopy(net))
    kinds = [type(m) for m in converted.modules()]
    assert kinds.count(FastInception) == 9 and Inception not in kinds
    assert not converted.training
    with torch.no_grad():
        assert_close(converted(x), want, torch.float32, "logits")


def test_convert_recognises_a_copied_d2l_class_and_keeps_train_mode():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), D2LInception(8, 4, (3, 5), (2, 3), 2)).train()
    x = torch.randn(2, 1, 6, 6)
    want = model(x)
    convert(model)
    assert isinstance(model[1], FastInception) and model[1].training
    assert_close(model(x), want, torch.float32, "converted d2l block")


def test_convert_leaves_other_shapes_alone():
    block = D2LInception(8, 4, (3, 5), (2, 3), 2)
    block.p2_2 = nn.Conv2d(3, 5, kernel_size=3, padding=1, stride=2)
    model = nn.Sequential(block)
    assert convert(model)[0] is block


def test_convert_of_a_bare_block_returns_a_fast_block():
    ref = Inception(*ARGS)
    assert isinstance(convert(ref), FastInception)


class ScaledInception(D2LInception):
    """A d2l block with a parameter of its own that its forward uses: structure alone cannot reproduce it."""

    def __init__(self, *args):
        super().__init__(*args)
        self.scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, x):
        return self.scale * super().forward(x)


def test_convert_leaves_blocks_with_their_own_parameters_alone():
    first, odd = D2LInception(8, 4, (3, 5), (2, 3), 2), ScaledInception(14, 4, (3, 5), (2, 3), 2)
    model = nn.Sequential(first, odd)
    _, report = convert(model, report=True)
    assert isinstance(model[0], FastInception) and model[1] is odd
    assert report.skipped_names == ["1"] and "parameter scale of its own" in report.skipped[0].reason


def test_convert_leaves_the_random_state_alone():
    # a conversion must not change what a seeded run does next (no initial weights are drawn for the new blocks)
    model = googlenet()
    torch.manual_seed(123)
    convert(model)
    after_convert = torch.rand(3)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(3), after_convert)
