"""convert() on Inception-v3 blocks shaped as torchvision defines them, with torchvision's pools and with
pytorch-fid's (same submodules, other pools in forward): each recognised, its pool found by the probe, BatchNorm
folded, and the model's output unchanged."""
import copy

import pytest
import torch
import torch.nn.functional as F

from fastinception import ProgramBlock, convert

from helpers import (
    DEVICE,
    TVInceptionA,
    TVInceptionE,
    assert_close,
    make_input,
    randomise_batchnorms,
    tv_inception_v3_blocks,
    without_tf32,
)

TV_NAMES = ["InceptionA", "InceptionB", "InceptionC", "InceptionD", "InceptionE", "InceptionE"]
FID_NAMES = ["FIDInceptionA", "InceptionB", "FIDInceptionC", "InceptionD", "FIDInceptionE_1", "FIDInceptionE_2"]


@pytest.mark.parametrize("fid, names", [(False, TV_NAMES), (True, FID_NAMES)], ids=["torchvision", "fid"])
def test_every_block_type_converts_and_the_output_is_unchanged(fid, names):
    model = tv_inception_v3_blocks(fid)
    x = make_input((2, 16, 9, 9), seed=1)
    with torch.no_grad():
        want = model.double()(x.double())
        model.float()
        fast, report = convert(model, report=True)
        got = fast(x)
    assert [b.spec.name for b in report.converted] == names, str(report)
    assert {b.style for b in report.converted} == {"inception_v3"} and not report.skipped
    assert all(isinstance(m, ProgramBlock) for m in fast)
    assert_close(got, want, torch.float32, "converted model")


def test_the_probe_tells_pools_apart_that_structure_cannot():
    # the same submodules and weights, three forwards: each gets the program of its own pool
    for pool, name in (("avg", "InceptionE"), ("avg_exclude_pad", "FIDInceptionE_1"), ("max", "FIDInceptionE_2")):
        torch.manual_seed(0)
        block = TVInceptionE(32, pool).eval()
        randomise_batchnorms(block, seed=1)
        fast, report = convert(block, report=True)
        assert report.converted[0].spec.name == name
        x = make_input((1, 32, 5, 5), seed=2)
        with torch.no_grad():
            assert_close(fast(x), block(x), torch.float32, pool)


class LeakyInceptionA(TVInceptionA):
    def forward(self, x):
        return F.leaky_relu(super().forward(x) - 0.1, 0.01)


def test_a_block_that_computes_something_else_is_left_alone_with_the_reason():
    block = LeakyInceptionA(16, 8).eval()
    randomise_batchnorms(block, seed=1)
    model = torch.nn.Sequential(block)
    converted, report = convert(model, report=True)
    assert converted[0] is block and not report.converted
    assert "matches none of its candidates" in report.skipped[0].reason
    assert "FIDInceptionA" in report.skipped[0].reason


def test_training_mode_is_refused_before_anything_changes():
    model = tv_inception_v3_blocks().train()
    before = list(model)
    with pytest.raises(RuntimeError, match=r"BatchNorm in training mode in 0 \(branch1x1, "):
        convert(model)
    assert list(model) == before


def test_converted_blocks_run_on_the_backend_asked_for():
    torch.manual_seed(0)
    block = TVInceptionA(16, 8).eval()
    randomise_batchnorms(block, seed=1)
    original = copy.deepcopy(block).to(DEVICE)
    converted = convert(torch.nn.Sequential(block).to(DEVICE), backend="triton")
    assert isinstance(converted[0], ProgramBlock) and converted[0].backend == "triton"
    x = make_input((2, 16, 5, 5), "nhwc", seed=2, device=DEVICE)
    with torch.no_grad(), without_tf32():
        assert_close(converted(x), original(x), torch.float32, "converted on the triton backend")


def test_hooked_or_unknown_submodules_are_left_alone():
    model = torch.nn.Sequential(TVInceptionA(16, 8).eval(), TVInceptionA(16, 8).eval())
    model[0].branch5x5_2.conv.register_forward_hook(lambda *a: None)
    model[1].branch5x5_2.bn = torch.nn.GroupNorm(8, 64)
    converted, report = convert(model, report=True)
    assert not report.converted
    reasons = [b.reason for b in report.skipped]
    assert "forward hook" in reasons[0] and "nn.BatchNorm2d" in reasons[1]


def test_report_lists_the_program():
    _, report = convert(torch.nn.Sequential(TVInceptionA(16, 8).eval()), report=True)
    assert "converted 0 (inception_v3): 16 -> 232 channels, InceptionA" in str(report)

