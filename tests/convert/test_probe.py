"""convert runs each candidate once on a small input and swaps it only when the fused block computes the same.

Structure cannot show the forward: these blocks have exactly the right submodules but compute something else,
so only the probe can leave them alone.
"""
import copy
import importlib
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fastinception.functional
from fastinception import FastInception, Inception, convert

from helpers import D2LInception, TVInception, assert_close, small_block

ARGS = (6, 3, (4, 5), (2, 3), 2)


class SiLUInception(D2LInception):
    """d2l's submodules, SiLU in the forward: nothing structural differs."""

    def forward(self, x):
        act = F.silu
        p1 = act(self.p1_1(x))
        p2 = act(self.p2_2(act(self.p2_1(x))))
        p3 = act(self.p3_2(act(self.p3_1(x))))
        p4 = act(self.p4_2(self.p4_1(x)))
        return torch.cat((p1, p2, p3, p4), dim=1)


class AvgPoolInception(TVInception):
    """torchvision's submodules, but the pool branch averages instead of calling its max-pool."""

    def forward(self, x):
        p4 = self.branch4[1](F.avg_pool2d(x, 3, stride=1, padding=1))
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), p4], 1)


class TwoInputInception(D2LInception):
    def forward(self, x, scale):
        return scale * super().forward(x)


class InputClobberingInception(D2LInception):
    def forward(self, x):
        out = super().forward(x)
        x.zero_()
        return out


def _d2l(cls=D2LInception, seed=0):
    torch.manual_seed(seed)
    return cls(*ARGS)


def _skipped(block, reason):
    model = nn.Sequential(block)
    _, report = convert(model, report=True)
    assert model[0] is block and report.converted == (), str(report)
    assert len(report.skipped) == 1 and report.skipped[0].reason.startswith(reason), report.skipped[0].reason
    return report.skipped[0].reason


def test_d2l_block_with_another_activation_in_its_forward_is_left_alone():
    reason = _skipped(_d2l(SiLUInception), "probe: the block's forward differs from the fused block (relative error ")
    assert re.search(r"in branch p\d, channels \d+:\d+, both in float64\)$", reason), reason


class LeakyInception(D2LInception):
    """Leaky ReLU with a slope of 0.01: within bfloat16's tolerance on the whole output, yet not the same block."""

    def forward(self, x):
        act = lambda t: F.leaky_relu(t, 0.01)  # noqa: E731
        p1 = act(self.p1_1(x))
        p2 = act(self.p2_2(act(self.p2_1(x))))
        p3 = act(self.p3_2(act(self.p3_1(x))))
        p4 = act(self.p4_2(self.p4_1(x)))
        return torch.cat((p1, p2, p3, p4), dim=1)


def test_a_difference_below_the_dtype_tolerance_is_still_seen():
    block = _d2l(LeakyInception).to(torch.bfloat16)
    _skipped(block, "probe: the block's forward differs from the fused block (relative error ")


def test_a_fused_block_off_by_more_than_its_dtype_allows_is_left_alone(monkeypatch):
    # fastinception.convert is also the name of the function, so the module is imported by its path.
    monkeypatch.setattr(importlib.import_module("fastinception.convert.probe"), "tolerance", lambda d, device: 0.0)
    reason = _skipped(_d2l(), "probe: the fused block in torch.float32 is off by relative error ")
    assert reason.endswith("over its tolerance 0e+00")


def test_torchvision_block_that_averages_is_left_alone():
    torch.manual_seed(0)
    block = AvgPoolInception(6, 3, 4, 5, 2, 3, 2)
    block.load_state_dict(small_block().state_dict())
    _skipped(block.eval(), "probe: the block's forward differs from the fused block (relative error ")


def test_block_whose_forward_raises_is_left_alone():
    _skipped(_d2l(TwoInputInception), "probe: the block's forward raises TypeError: ")


def test_block_that_writes_into_its_input_is_left_alone():
    _skipped(_d2l(InputClobberingInception), "probe: the block's forward modifies its input in place")


def test_block_on_the_meta_device_is_left_alone():
    _skipped(Inception(*ARGS, device="meta"), "probe: parameters on the meta device")


def test_good_blocks_next_to_a_refused_one_convert_and_agree():
    torch.manual_seed(0)
    good_d2l, good_tv, bad = _d2l(seed=1), small_block(), _d2l(SiLUInception, seed=2)
    model = nn.Sequential(good_d2l, nn.Conv2d(13, 6, 1), good_tv, nn.Conv2d(13, 6, 1), bad).eval()
    x = torch.randn(2, 6, 9, 7)
    with torch.no_grad():
        want = model(x)
    _, report = convert(model, report=True)
    assert report.converted_names == ["0", "2"] and report.skipped_names == ["4"]
    assert isinstance(model[0], FastInception) and isinstance(model[2], FastInception) and model[4] is bad
    with torch.no_grad():
        assert_close(model(x), want, torch.float32, "model")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_blocks_of_each_dtype_pass_their_probe(dtype):
    block = _d2l().to(dtype)
    tv = small_block().to(dtype)
    model = nn.Sequential(block, nn.Sequential(tv))
    _, report = convert(model, report=True)
    assert report.converted_names == ["0", "1.0"], str(report)
    assert model[0].p1_1.weight.dtype == dtype and model[1][0].p1_1.weight.dtype == dtype


def test_probe_runs_on_the_torch_backend_and_the_block_gets_the_one_asked_for(monkeypatch):
    def no_triton(*args, **kwargs):
        raise AssertionError("the probe ran the triton backend")

    monkeypatch.setattr(fastinception.functional, "inception_triton", no_triton)
    model = nn.Sequential(_d2l(), small_block())
    convert(model, backend="triton")
    assert model[0].backend == "triton" and model[1].backend == "triton"


def test_probe_runs_a_copy_and_leaves_the_block_alone():
    block = small_block()
    before = copy.deepcopy(block.state_dict())
    _, report = convert(nn.Sequential(block), report=True)
    assert report.converted_names == ["0"]
    for name, t in block.state_dict().items():
        assert torch.equal(t, before[name]), name
