"""Weights a block shares with another block or another module stay shared: such blocks are left alone.

A FastInception holds copies of the block's weights, so swapping one of two blocks that share a conv would
untie them (training would then update two copies apart). The same block object under two names is not a tie:
it becomes one FastInception in both places.
"""
import re

import torch
from torch import nn

from fastinception import FastInception, convert

from helpers import D2LInception, small_block

ARGS = (6, 3, (4, 5), (2, 3), 2)


def _d2l(seed=0):
    torch.manual_seed(seed)
    return D2LInception(*ARGS)


def _reasons(report):
    return {s.name: s.reason for s in report.skipped}


def test_conv_shared_by_two_blocks_stays_shared():
    first, second = _d2l(0), _d2l(1)
    second.p2_2 = first.p2_2
    model = nn.Sequential(first, second)
    _, report = convert(model, report=True)
    assert model[0] is first and model[1] is second and model[0].p2_2 is model[1].p2_2
    assert report.converted == ()
    reasons = _reasons(report)
    assert re.match(r"p2_2\.weight is also used as 1\.p2_2\.weight", reasons["0"]), reasons
    assert re.match(r"p2_2\.weight is also used as 0\.p2_2\.weight", reasons["1"]), reasons


def test_parameter_shared_by_two_blocks_stays_shared():
    first, second, third = _d2l(0), _d2l(1), _d2l(2)
    second.p1_1.weight = first.p1_1.weight
    model = nn.Sequential(first, nn.Sequential(second), third)
    _, report = convert(model, report=True)
    assert report.converted_names == ["2"] and isinstance(model[2], FastInception)
    assert model[0] is first and model[1][0] is second and second.p1_1.weight is first.p1_1.weight
    assert _reasons(report) == {
        "0": "p1_1.weight is also used as 1.0.p1_1.weight",
        "1.0": "p1_1.weight is also used as 0.p1_1.weight",
    }


def test_conv_shared_with_a_module_outside_any_block_stays_shared():
    block = _d2l()
    model = nn.Sequential(block, nn.ReLU())
    model.head = block.p4_2
    _, report = convert(model, report=True)
    assert model[0] is block and report.converted == ()
    assert _reasons(report)["0"].startswith("p4_2.weight is also used as head.weight"), str(report)


def test_batchnorm_shared_by_two_torchvision_blocks_stays_shared():
    first, second = small_block(), small_block()
    second.branch1.bn = first.branch1.bn
    model = nn.Sequential(first, second)
    _, report = convert(model, report=True)
    assert model[0] is first and model[1] is second and report.converted == ()
    assert _reasons(report)["0"].startswith("branch1.bn.weight is also used as 1.branch1.bn.weight")


def test_same_d2l_block_under_two_names_becomes_one_fast_block():
    block = _d2l()
    model = nn.Sequential(block, nn.Sequential(block))
    _, report = convert(model, report=True)
    assert report.converted_names == ["0", "1.0"] and report.skipped == ()
    assert isinstance(model[0], FastInception) and model[0] is model[1][0]


def test_same_block_under_two_names_with_a_tie_outside_is_left_alone_in_both():
    block = _d2l()
    model = nn.Sequential(block, block)
    model.head = nn.Conv2d(6, 3, 1)
    model.head.bias = block.p1_1.bias
    _, report = convert(model, report=True)
    assert model[0] is block and model[1] is block and report.converted == ()
    assert _reasons(report) == {
        "0": "p1_1.bias is also used as head.bias",
        "1": "p1_1.bias is also used as head.bias",
    }


def test_conv_used_twice_inside_one_block_stays_shared():
    torch.manual_seed(0)
    block = D2LInception(6, 3, (4, 5), (4, 3), 2)
    block.p3_1 = block.p2_1  # both reductions the same conv: a FastInception would hold two copies
    _, report = convert(nn.Sequential(block), report=True)
    assert report.converted == ()
    assert _reasons(report)["0"].startswith("p2_1.weight is also used as 0.p3_1.weight")
