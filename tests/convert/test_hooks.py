"""Blocks whose forward is changed by hooks, pruning, weight norm or parametrizations are left alone, not dropped.

A fused block makes no call to p2_2 or branch2[1].conv, so a hook on one of them would silently stop running;
pruning and hook-based weight norm keep their real weights under other names, so copying ``weight`` would also
be wrong (and raised a state_dict error from the whole convert before).
"""
import re
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations, parametrize, prune

from fastinception import FastInception, convert
from fastinception.blocks.structure import d2l_spec_of

from helpers import D2LInception, small_block

ARGS = (6, 3, (4, 5), (2, 3), 2)


def _d2l():
    torch.manual_seed(0)
    return D2LInception(*ARGS)


def _noop(*args, **kwargs):
    return None


HOOKS = [
    (lambda b: b.p2_2.register_forward_hook(_noop), r"p2_2: forward hook"),
    (lambda b: b.p2_2.register_forward_hook(_noop, with_kwargs=True), r"p2_2: forward hook"),
    (lambda b: b.p2_2.register_forward_pre_hook(_noop), r"p2_2: forward pre-hook"),
    (lambda b: b.p1_1.register_forward_pre_hook(_noop, with_kwargs=True), r"p1_1: forward pre-hook"),
    (lambda b: b.p4_1.register_forward_hook(_noop), r"p4_1: forward hook"),
    (lambda b: b.register_forward_pre_hook(_noop), r"block: forward pre-hook"),
    (lambda b: b.p3_1.register_backward_hook(_noop), r"p3_1: backward hook"),
    (lambda b: b.p3_2.register_full_backward_hook(_noop), r"p3_2: full backward hook"),
    (lambda b: b.register_full_backward_pre_hook(_noop), r"block: backward pre-hook"),
    (lambda b: b.p4_2.register_full_backward_pre_hook(_noop), r"p4_2: backward pre-hook"),
]
HOOK_IDS = ["forward", "forward-kwargs", "pre", "pre-kwargs", "pool", "block-pre", "backward", "full-backward",
            "block-backward-pre", "backward-pre"]


def _left_alone(block, reason):
    """convert leaves ``block`` alone next to a plain block it converts, with a reason matching ``reason``."""
    model = nn.Sequential(_d2l(), block)
    out, report = convert(model, report=True)
    assert out is model and model[1] is block and isinstance(model[0], FastInception)
    assert report.converted_names == ["0"] and report.skipped_names == ["1"], str(report)
    assert re.search(reason, report.skipped[0].reason), report.skipped[0].reason
    return report.skipped[0].reason


@pytest.mark.parametrize("add, reason", HOOKS, ids=HOOK_IDS)
def test_d2l_block_with_a_hook_is_left_alone(add, reason):
    block = _d2l()
    add(block)
    _left_alone(block, reason)
    with pytest.raises(TypeError, match=reason):
        FastInception.from_module(block)


@pytest.mark.parametrize(
    "add, reason",
    [
        (lambda b: b.branch2[1].conv.register_forward_hook(_noop), r"branch2\[1\]\.conv: forward hook"),
        (lambda b: b.branch3.register_forward_pre_hook(_noop), r"branch3: forward pre-hook"),
        (lambda b: b.branch4[0].register_forward_hook(_noop), r"branch4\[0\]: forward hook"),
        (lambda b: b.branch1.bn.register_full_backward_hook(_noop), r"branch1\.bn: full backward hook"),
    ],
    ids=["conv", "branch", "pool", "bn"],
)
def test_torchvision_block_with_a_hook_is_left_alone(add, reason):
    block = small_block()
    add(block)
    _left_alone(block, reason)


def test_hook_reason_names_the_hook():
    block = _d2l()
    block.p2_2.register_forward_hook(_noop)
    assert _left_alone(block, "p2_2: forward hook") == "p2_2: forward hook (_noop)"


def test_pruned_conv_is_left_alone():
    block = _d2l()
    prune.l1_unstructured(block.p2_2, "weight", 0.3)
    _left_alone(block, r"^p2_2: forward pre-hook \(L1Unstructured\)")
    block = small_block()
    prune.l1_unstructured(block.branch3[1].conv, "weight", 0.3)
    _left_alone(block, r"^branch3\[1\]\.conv: forward pre-hook \(L1Unstructured\)")


def test_hook_based_weight_norm_is_left_alone():
    block = _d2l()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated in favour of the parametrization
        torch.nn.utils.weight_norm(block.p3_2)
    _left_alone(block, r"^p3_2: forward pre-hook \(WeightNorm\)")


def test_parametrized_conv_is_left_alone():
    block = _d2l()
    parametrizations.weight_norm(block.p1_1)
    assert parametrize.is_parametrized(block.p1_1)
    _left_alone(block, r"^p1_1: parametrized \(weight\)")
    block = small_block()
    parametrizations.spectral_norm(block.branch2[0].conv)
    _left_alone(block, r"^branch2\[0\]\.conv: parametrized \(weight\)")


@pytest.mark.parametrize(
    "add, reason",
    [
        (lambda c: c.register_buffer("scale", torch.ones(1)), r"^p2_1: buffer scale besides weight and bias"),
        (lambda c: c.register_parameter("gain", nn.Parameter(torch.ones(1))),
         r"^p2_1: parameter gain besides weight and bias"),
    ],
    ids=["buffer", "parameter"],
)
def test_conv_with_other_tensors_is_left_alone(add, reason):
    block = _d2l()
    add(block.p2_1)
    _left_alone(block, reason)
    with pytest.raises(TypeError, match=reason[1:]):
        FastInception.from_module(block)


def test_plain_blocks_still_pass_the_checks():
    assert d2l_spec_of(_d2l()).c2b == 5
    block = _d2l()
    handle = block.p2_2.register_forward_hook(_noop)
    handle.remove()  # a removed hook leaves nothing behind
    assert isinstance(convert(block), FastInception)
