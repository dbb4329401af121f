"""The drop-in layer: state_dict round trips, from_module, output buffers and errors of FastInception."""

import pytest
import torch
from torch import nn

from fastinception import FastInception, Inception, googlenet

from helpers import D2LInception, assert_close

ARGS = (6, 3, (4, 5), (2, 3), 2)


def test_state_dict_round_trips_both_ways():
    ref, fast = Inception(*ARGS), FastInception(*ARGS)
    fast.load_state_dict(ref.state_dict(), strict=True)
    for name, t in ref.state_dict().items():
        assert torch.equal(fast.state_dict()[name], t), name
    other = Inception(*ARGS)
    other.load_state_dict(fast.state_dict(), strict=True)
    for name, t in fast.state_dict().items():
        assert torch.equal(other.state_dict()[name], t), name


def test_from_module_keeps_weights_dtype_and_mode():
    ref = Inception(*ARGS, k3=3, dtype=torch.float64).eval()
    fast = FastInception.from_module(ref)
    assert not fast.training and fast.spec == ref.spec and fast.p1_1.weight.dtype == torch.float64
    x = torch.randn(2, 6, 5, 4, dtype=torch.float64)
    assert_close(fast(x), ref(x), torch.float64, "from_module")


def test_googlenet_fast_builds_the_same_network():
    torch.manual_seed(3)
    ref = googlenet()
    torch.manual_seed(3)
    fast = googlenet(fast=True, backend="torch")
    assert sum(isinstance(m, FastInception) for m in fast.modules()) == 9
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert_close(fast(x), ref(x), torch.float32, "googlenet logits")


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_out_argument_writes_a_slice_of_a_larger_buffer(fmt):
    fast = FastInception(*ARGS, backend="torch")
    x = torch.randn(2, 6, 5, 7).contiguous(memory_format=fmt)
    big = torch.full((2, 3 + fast.spec.out_channels + 4, 5, 7), float("nan")).contiguous(memory_format=fmt)
    view = big[:, 3 : 3 + fast.spec.out_channels]
    assert fast(x, out=view) is view
    assert torch.isnan(big[:, :3]).all() and torch.isnan(big[:, -4:]).all()
    assert_close(view, Inception.forward(fast, x), torch.float32, "out slice")


def test_empty_batch_and_one_pixel():
    fast = FastInception(*ARGS)
    assert fast(torch.randn(0, 6, 4, 5)).shape == (0, fast.spec.out_channels, 4, 5)
    for shape in [(2, 6, 1, 1), (1, 6, 1, 9), (3, 6, 7, 1)]:
        x = torch.randn(shape)
        assert_close(fast(x), Inception.forward(fast, x), torch.float32, str(shape))


@pytest.mark.parametrize(
    "make_x, error, message",
    [
        (lambda: torch.randn(6, 5, 5), ValueError, r"4-D input .*got 3-D"),
        (lambda: torch.randn(2, 5, 5, 5), ValueError, r"expects 6 input channels, got 5"),
        (lambda: torch.randn(2, 6, 5, 5, dtype=torch.float64), TypeError, r"float64 differs from .*float32"),
        (lambda: torch.ones(2, 6, 5, 5, dtype=torch.int64), TypeError, r"floating-point input, got torch.int64"),
        (lambda: torch.ones(2, 6, 5, 5, dtype=torch.bool), TypeError, r"floating-point input, got torch.bool"),
        (lambda: torch.randn(2, 6, 5, 5, device="meta"), RuntimeError,
         r"input is on meta but parameter w1 \(p1_1.weight\) is on cpu"),
        (lambda: [1.0], TypeError, r"expects a torch.Tensor, got list"),
    ],
)
def test_bad_input_is_refused_clearly(make_x, error, message):
    fast = FastInception(*ARGS)
    with pytest.raises(error, match=message):
        fast(make_x())


@pytest.mark.parametrize(
    "make_out, error, message",
    [
        (lambda x, c: torch.empty(2, c + 1, 5, 5), ValueError, r"out must have shape \(2, 13, 5, 5\)"),
        (lambda x, c: torch.empty(2, c, 5, 5, dtype=torch.float64), TypeError, r"out must have dtype torch.float32"),
        (lambda x, c: torch.empty(2, c, 5, 5, device="meta"), RuntimeError, r"out must be on cpu"),
    ],
)
def test_bad_out_is_refused_clearly(make_out, error, message):
    fast = FastInception(*ARGS)
    x = torch.randn(2, 6, 5, 5)
    with pytest.raises(error, match=message):
        fast(x, out=make_out(x, fast.spec.out_channels))


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match=r"backend must be one of .*got 'cudnn'"):
        FastInception(*ARGS, backend="cudnn")


def test_empty_batch_has_a_backward():
    fast = FastInception(*ARGS)
    x = torch.randn(0, 6, 4, 5, requires_grad=True)
    fast(x).sum().backward()
    assert x.grad.shape == x.shape
    assert all(p.grad is not None and not p.grad.any() for p in fast.parameters())


def test_out_with_overlapping_elements_or_a_grad_leaf_is_refused():
    fast = FastInception(*ARGS)
    c = fast.spec.out_channels
    x = torch.randn(2, 6, 5, 5)
    with pytest.raises(ValueError, match="elements that share memory"):
        fast(x, out=torch.empty(1, c, 5, 5).expand(2, c, 5, 5))
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        fast(x, out=torch.empty(2, c, 5, 5, requires_grad=True))


def test_from_module_keeps_frozen_parameters_frozen():
    ref = Inception(*ARGS)
    ref.p2_2.weight.requires_grad_(False)
    fast = FastInception.from_module(ref)
    assert [p.requires_grad for p in fast.parameters()] == [p.requires_grad for p in ref.parameters()]


def test_from_module_says_why_a_block_is_not_convertible():
    block = D2LInception(8, 4, (3, 5), (2, 3), 2)
    block.p2_2 = nn.Conv2d(3, 5, kernel_size=3, padding=1, stride=2)
    with pytest.raises(TypeError, match=r"p2_2: stride \(2, 2\), expected \(1, 1\)"):
        FastInception.from_module(block)


def test_the_kernels_read_spatial_weights_channels_last_and_gradients_keep_the_parameters_layout():
    # input channels contiguous in every weight the kernels read: weight tiles are runs of 16-byte loads
    from fastinception.ops.triton_function import kernel_layout

    fast = FastInception.from_module(Inception(*ARGS), backend="triton")
    params = fast.params()
    laid_out = kernel_layout(params)
    for p, q in zip(params, laid_out):
        assert torch.equal(p, q)
        if p.dim() == 4:
            assert q.is_contiguous(memory_format=torch.channels_last)
    cl = params.w2b.contiguous(memory_format=torch.channels_last)
    assert kernel_layout([cl])[0].data_ptr() == cl.data_ptr(), "no copy of a weight already channels-last"
    fast(torch.randn(2, 6, 5, 4, requires_grad=True)).sum().backward()
    for name, p in fast.named_parameters():
        assert p.grad.stride() == p.stride(), f"{name}: gradient strides {p.grad.stride()} vs {p.stride()}"


def test_from_module_keeps_the_weights_memory_format():
    ref = Inception(*ARGS).to(memory_format=torch.channels_last)
    fast = FastInception.from_module(ref)
    for name, p in fast.named_parameters():
        want = dict(ref.named_parameters())[name]
        assert torch.equal(p, want) and p.stride() == want.stride(), name
        assert p.data_ptr() != want.data_ptr(), f"{name} must be a copy"
