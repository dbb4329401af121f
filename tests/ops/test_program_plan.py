"""Any block program on the fused PyTorch plan against the reference interpreter in float64: forward, gradients of
the input and of every weight, both layouts, ``out=`` into a NaN-poisoned buffer."""
import pytest
import torch

from fastinception.blocks import programs as P
from fastinception.ops import program_plan
from fastinception.ops.program_plan import fuse_pointwise, run_program_torch
from fastinception.reference.program import run_reference

from helpers import (
    FORMATS,
    HAND_WRITTEN,
    assert_close,
    hand_written_weights,
    make_input,
    poisoned,
    record_launches,
)
from helpers import (
    PROGRAM_CASES as CASES,
)


def _weights(program, dtype, seed):
    return [(w.requires_grad_(), b.requires_grad_())
            for w, b in hand_written_weights([s.weight_shape for s in program.conv_slots()], dtype, seed)]


def _reference(program, weights, x, grad):
    """Forward and gradients (x, then every weight and bias) in float64."""
    w64 = [(w.detach().double().requires_grad_(), b.detach().double().requires_grad_()) for w, b in weights]
    x64 = x.detach().double().requires_grad_()
    y = run_reference(program, w64, x64)
    grads = torch.autograd.grad(y, [x64, *(t for pair in w64 for t in pair)], grad)
    return y.detach(), grads


# Each layout and each form of the pointwise convs in the default run (two of the four pairs), all four under -m slow.
@pytest.mark.parametrize("fmt, fused", [("nhwc", True), ("nchw", False),
                                        pytest.param("nchw", True, marks=pytest.mark.slow),
                                        pytest.param("nhwc", False, marks=pytest.mark.slow)],
                         ids=["nhwc-fused", "nchw-separate", "nchw-fused", "nhwc-separate"])
@pytest.mark.parametrize("dtype", [torch.float32, pytest.param(torch.float64, marks=pytest.mark.slow)],
                         ids=["fp32", "fp64"])
@pytest.mark.parametrize("name", list(CASES))
def test_program_plan_matches_reference(name, dtype, fmt, fused, monkeypatch):
    monkeypatch.setattr(program_plan, "fuse_pointwise", lambda x, channels: fused)
    program, side = CASES[name]
    weights = _weights(program, dtype, seed=side)
    x = make_input((2, program.in_channels, side, side), fmt, dtype, seed=len(name)).requires_grad_()
    y = run_program_torch(program, weights, x)
    assert y.is_contiguous(memory_format=FORMATS[fmt])
    grad = torch.randn(y.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    want, want_grads = _reference(program, weights, x, grad)
    assert_close(y, want, dtype, f"{name} forward")
    got_grads = torch.autograd.grad(y, [x, *(t for pair in weights for t in pair)], grad.to(dtype))
    for k, (g, w) in enumerate(zip(got_grads, want_grads)):
        assert_close(g, w, dtype, f"{name} grad {k}")


@pytest.mark.parametrize("name", list(CASES))
def test_program_plan_writes_only_its_slice_of_out(name):
    program, side = CASES[name]
    weights = [(w.detach(), b.detach()) for w, b in _weights(program, torch.float32, seed=1)]
    x = make_input((2, program.in_channels, side, side), "nhwc", seed=2)
    h, w = program.out_size(side, side)
    buf = poisoned((2, program.out_channels + 7, h, w), torch.float32, "nhwc")
    out = buf[:, 3 : 3 + program.out_channels]
    with torch.no_grad():
        got = run_program_torch(program, weights, x, out=out)
    assert got.data_ptr() == out.data_ptr()
    assert torch.isnan(buf[:, :3]).all() and torch.isnan(buf[:, 3 + program.out_channels :]).all()
    want = run_reference(program, [(w.double(), b.double()) for w, b in weights], x.double())
    assert_close(out, want, torch.float32, name)


@pytest.mark.parametrize("shape, dtype", [((1, 2048, 4, 4), torch.float32), ((2, 2048, 4, 3), torch.float32),
                                          ((2, 2048, 4, 4), torch.float64)])
def test_an_out_of_another_shape_or_dtype_is_refused(shape, dtype):
    program, side = CASES["v3_E"]
    weights = [(w.detach(), b.detach()) for w, b in _weights(program, torch.float32, seed=1)]
    x = make_input((2, program.in_channels, side, side), seed=3)
    with pytest.raises(ValueError, match=r"out must be \(2, 2048, 4, 4\)"):
        run_program_torch(program, weights, x, out=torch.zeros(shape, dtype=dtype))


def test_pointwise_convs_that_read_x_run_as_one_convolution(monkeypatch):
    # v3's E block: three 1x1 convs read x (the pool branch's 1x1 reads the pool), 9 convs in all
    monkeypatch.setattr(program_plan, "fuse_pointwise", lambda x, channels: True)
    program, side = CASES["v3_E"]
    weights = [(w.detach(), b.detach()) for w, b in _weights(program, torch.float32, seed=1)]
    x = make_input((1, program.in_channels, side, side), seed=3)
    with torch.no_grad(), record_launches() as log:
        run_program_torch(program, weights, x)
    assert log.ops.count("convolution") == 7
    assert "cat" in log.ops  # the weights of the fused conv, never the branch outputs: those go to slices
    monkeypatch.setattr(program_plan, "fuse_pointwise", lambda x, channels: False)
    with torch.no_grad(), record_launches() as log:
        run_program_torch(program, weights, x)
    assert log.ops.count("convolution") == 9 and "cat" not in log.ops


def test_fuse_pointwise_on_cpu_weighs_weights_against_pixels():
    x = torch.empty(2, 8, 5, 5)
    assert fuse_pointwise(x, 50) and not fuse_pointwise(x, 51)


@pytest.mark.parametrize("name", ["v3_A", "v3_E"])
def test_same_weights_as_the_hand_written_copy(name):
    # the hand-written copy, the reference interpreter and the plan agree on one set of weights
    copy, args, side = HAND_WRITTEN["tv_A" if name == "v3_A" else "tv_E"]
    program = P.inception_v3_a(*args) if name == "v3_A" else P.inception_v3_e(*args)
    weights = hand_written_weights(copy.shapes(*args), seed=9)
    x = make_input((3, args[0], side, side), dtype=torch.float64, seed=4)
    assert_close(run_program_torch(program, weights, x), copy.forward(x, weights), torch.float64, name)
