"""The backward kernels of block programs (``conv2d_general_backward``, ``pool2d_backward``) against float64 PyTorch
autograd: rectangular and strided convs' input, weight and bias grads, a split's two input grads summed in one
launch, accumulation into a gradient that holds a value, and pool input grads with PyTorch's max tie rule (integer
inputs: many equal maxima), NaN and all -inf windows, and the average divisors (count_include_pad, ceil_mode).
The weight grads' pixel sum both whole (one launch) and split into chunks (partials, then a fixed-order sum): the
chunks' bounds, the order of the sum and bitwise repeatability with the programs run in any order.

Inputs are drawn in float64 and rounded to the dtype under test; the reference runs in float64 on the rounded values,
so the per-dtype tolerances of fastinception.testing apply (fp16 2e-3, fp32 1e-5, fp64 1e-10, relative norm).
Gradient buffers are NaN-poisoned: an element a kernel does not write fails.
"""
import pytest
import torch
import torch.nn.functional as F

from fastinception.kernels import conv2d_backward, conv2d_general_backward
from fastinception.kernels.conv2d_general_backward import (
    launch_conv2d_input_grad,
    launch_conv2d_weight_grad,
    weight_grad_splits,
)
from fastinception.kernels.pool2d_backward import launch_pool2d_input_grad

from helpers import CUDA, DEVICE, FORMATS, assert_close, poisoned, record_launches, shuffled_programs, without_tf32

F64 = torch.float64
# fp32 in the default run, fp64 and fp16 under -m slow (the same kernels with other element types)
DTYPES = [pytest.param(torch.float64, marks=pytest.mark.slow), torch.float32,
          pytest.param(torch.float16, marks=pytest.mark.slow)]

# (kernel, stride, padding, relu): v3's and BN-Inception's convs, and an asymmetric stride
CONVS = [
    ((1, 7), (1, 1), (0, 3), True),
    ((7, 1), (1, 1), (3, 0), False),
    ((3, 3), (2, 2), (0, 0), True),
    ((5, 5), (1, 1), (2, 2), True),
    ((3, 3), (2, 1), (1, 1), True),
    ((1, 1), (1, 1), (0, 0), True),
]


def _rand(gen, shape, dtype, fmt="nhwc", ints=False):
    v = torch.randint(-2, 3, shape, generator=gen).to(F64) if ints else torch.randn(shape, generator=gen, dtype=F64)
    v = v.to(dtype).to(F64)
    return v.contiguous(memory_format=FORMATS[fmt]) if v.dim() == 4 else v


def _dev(t, dtype):
    return t.detach().to(device=DEVICE, dtype=dtype)


def _conv_case(gen, kernel, stride, padding, relu, dtype, fmt, c_out=6):
    x = _rand(gen, (2, 5, 9, 8), dtype, fmt).requires_grad_()
    w = (_rand(gen, (c_out, 5, *kernel), dtype) / (5 * kernel[0] * kernel[1]) ** 0.5).to(dtype).to(F64)
    w.requires_grad_()
    b = _rand(gen, (c_out,), dtype).requires_grad_()
    y = F.conv2d(x, w, b, stride, padding)
    y = y.relu() if relu else y
    grad_y = _rand(gen, tuple(y.shape), dtype, fmt)
    return x, w, b, y, grad_y


@pytest.mark.parametrize("fmt", ["nhwc", pytest.param("nchw", marks=pytest.mark.slow)])
@pytest.mark.parametrize("dtype", DTYPES, ids=["fp64", "fp32", "fp16"])
@pytest.mark.parametrize("kernel, stride, padding, relu", CONVS, ids=lambda v: str(v))
def test_conv_grads_match_float64(kernel, stride, padding, relu, dtype, fmt):
    gen = torch.Generator().manual_seed(sum(kernel) * 7 + stride[0])
    x, w, b, y, grad_y = _conv_case(gen, kernel, stride, padding, relu, dtype, fmt)
    want_x, want_w, want_b = torch.autograd.grad(y, (x, w, b), grad_y)
    got_x = poisoned(tuple(x.shape), dtype, FORMATS[fmt])
    got_w, got_b = poisoned(tuple(w.shape), dtype), poisoned(tuple(b.shape), dtype)
    with without_tf32():
        launch_conv2d_input_grad(got_x, [(_dev(grad_y, dtype), _dev(y, dtype), _dev(w, dtype), kernel, stride,
                                          padding, relu)])
        launch_conv2d_weight_grad(_dev(grad_y, dtype), _dev(y, dtype), _dev(x, dtype), got_w, got_b, kernel=kernel,
                                  stride=stride, padding=padding, relu=relu)
    assert_close(got_x, want_x, dtype, "input grad")
    assert_close(got_w, want_w, dtype, "weight grad")
    assert_close(got_b, want_b, dtype, "bias grad")


def test_split_input_grads_sum_in_one_launch_and_accumulate():
    # v3 E's split: a 1x3 and a 3x1 on one input, their grads (channel slices of one gradient) summed, added to a
    # gradient that already holds another branch's
    gen = torch.Generator().manual_seed(5)
    x, w1, b1, y1, g1 = _conv_case(gen, (1, 3), (1, 1), (0, 1), True, F64, "nhwc", c_out=4)
    w2 = _rand(gen, (3, 5, 3, 1), F64).requires_grad_()
    y2 = F.conv2d(x, w2, None, 1, (1, 0)).relu()
    grad = _rand(gen, (2, 7, 9, 8), F64)  # the block output's gradient: the split writes channels 0..3 and 4..6
    g1, g2 = grad[:, :4], grad[:, 4:]
    held = _rand(gen, tuple(x.shape), F64)
    want = held + torch.autograd.grad((y1 * g1).sum() + (y2 * g2).sum(), x)[0]
    got = _dev(held, F64)
    launch_conv2d_input_grad(got, [(_dev(g1, F64), _dev(y1, F64), _dev(w1, F64), (1, 3), (1, 1), (0, 1), True),
                                   (_dev(g2, F64), _dev(y2, F64), _dev(w2, F64), (3, 1), (1, 1), (1, 0), True)],
                             accumulate=True)
    assert_close(got, want, F64, "split input grad")


def test_bias_only_weight_grad_sums_masked_gradient():
    # the commuted average pool's bias: sum over pixels of grad_y where the saved output passes it
    gen = torch.Generator().manual_seed(6)
    y = _rand(gen, (2, 5, 4, 3), F64)
    grad_y = _rand(gen, (2, 5, 4, 3), F64)
    got = poisoned((5,), F64)
    launch_conv2d_weight_grad(_dev(grad_y, F64), _dev(y, F64), None, None, got, kernel=(1, 1), stride=(1, 1),
                              padding=(0, 0), relu=True)
    assert_close(got, (grad_y * (y > 0)).sum((0, 2, 3)), F64, "bias grad")


# ---------------------------------------------------------------------------------------------
# the weight grads' pixel sum: whole, or split into fixed chunks

INTERPRETER_ONLY = pytest.mark.skipif(CUDA, reason="the chunk sizes asserted are the interpreter's")


def _weight_grads(x, w, b, kernel, stride, padding, relu, scale, dtype, fmt, bias_only=False, config=None):
    """(want, got, kernel launches) of the weight and bias grads of ``scale * relu?(conv2d(x, w, b))``: want by
    float64 autograd on the rounded values, got by the launcher into NaN-poisoned grads."""
    y = F.conv2d(x, w, b, stride, padding)
    y = y.relu() if relu else y
    grad_y = _rand(torch.Generator().manual_seed(y.numel()), tuple(y.shape), dtype, fmt)
    want = torch.autograd.grad(scale * y, (w, b), grad_y)
    got_w = None if bias_only else poisoned(tuple(w.shape), dtype)
    got_b = poisoned(tuple(b.shape), dtype)
    args = _dev(grad_y, dtype), _dev(y, dtype), None if bias_only else _dev(x, dtype), got_w, got_b
    with without_tf32(), record_launches() as log:
        launch_conv2d_weight_grad(*args, kernel=kernel, stride=stride, padding=padding, relu=relu, scale=scale,
                                  config=config)
    return want, (got_w, got_b), log.launches


def _wgrad_case(gen, shape, kernel, c_out, dtype, fmt):
    x = _rand(gen, shape, dtype, fmt).requires_grad_()
    w = (_rand(gen, (c_out, shape[1], *kernel), dtype) / (shape[1] * kernel[0] * kernel[1]) ** 0.5).to(dtype)
    return x, w.to(F64).requires_grad_(), _rand(gen, (c_out,), dtype).requires_grad_()


# (input shape, kernel, stride, padding, relu, scale): output pixels that leave a short last chunk
SPLIT_CASES = [
    pytest.param((2, 5, 12, 11), (3, 3), (1, 1), (1, 1), True, 1.0, torch.float32, "nhwc", id="3x3-fp32-nhwc"),
    pytest.param((3, 4, 9, 11), (7, 1), (1, 1), (3, 0), False, 0.17, F64, "nchw", id="7x1-scaled-fp64-nchw"),
    pytest.param((2, 6, 25, 23), (3, 3), (2, 2), (0, 0), True, 1.0, torch.float32, "nchw", id="3x3s2-fp32-nchw",
                 marks=pytest.mark.slow),
    pytest.param((2, 5, 12, 23), (1, 3), (1, 2), (0, 1), True, 0.2, torch.float16, "nhwc", id="1x3s12-fp16-nhwc",
                 marks=pytest.mark.slow),
]


@pytest.mark.parametrize("shape, kernel, stride, padding, relu, scale, dtype, fmt", SPLIT_CASES)
def test_split_weight_grads_match_float64(shape, kernel, stride, padding, relu, scale, dtype, fmt):
    gen = torch.Generator().manual_seed(shape[2] * 31 + kernel[0])
    x, w, b = _wgrad_case(gen, shape, kernel, 6, dtype, fmt)
    oh, ow = ((s + 2 * p - k) // st + 1 for s, k, st, p in zip(shape[2:], kernel, stride, padding))
    pixels = shape[0] * oh * ow
    S, per = weight_grad_splits(pixels, 6, shape[1], kernel[0] * kernel[1], DEVICE)
    if not CUDA:  # several chunks, the last one short
        assert S >= 3 and pixels % per
    want, got, launches = _weight_grads(x, w, b, kernel, stride, padding, relu, scale, dtype, fmt)
    assert launches == (2 if S > 1 else 1)
    assert_close(got[0], want[0], dtype, "split weight grad")
    assert_close(got[1], want[1], dtype, "split bias grad")


@INTERPRETER_ONLY
def test_split_weight_grads_stop_at_the_chunk_end_within_a_pixel_step():
    # a forced pixel step (BLOCK_K 256) longer than the interpreter's 128-pixel chunk: each chunk's one step must
    # leave out the next chunk's pixels
    gen = torch.Generator().manual_seed(10)
    x, w, b = _wgrad_case(gen, (2, 5, 12, 11), (1, 1), 6, torch.float32, "nhwc")
    config = {"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 256}
    want, got, launches = _weight_grads(x, w, b, (1, 1), (1, 1), (0, 0), True, 1.0, torch.float32, "nhwc",
                                        config=config)
    assert launches == 2
    assert_close(got[0], want[0], torch.float32, "split weight grad, long pixel step")
    assert_close(got[1], want[1], torch.float32, "split bias grad, long pixel step")


@INTERPRETER_ONLY
@pytest.mark.parametrize("dtype, fmt", [(torch.float32, "nchw"), pytest.param(F64, "nhwc", marks=pytest.mark.slow)],
                         ids=["fp32-nchw", "fp64-nhwc"])
def test_bias_only_grad_split_matches_float64(dtype, fmt):
    # a commuted average pool's bias over 2 * 12 * 11 = 264 pixels: three chunks
    gen = torch.Generator().manual_seed(8)
    x, w, b = _wgrad_case(gen, (2, 3, 12, 11), (1, 1), 5, dtype, fmt)
    assert weight_grad_splits(264, 5, 1, 1, DEVICE)[0] == 3
    want, got, launches = _weight_grads(x, w, b, (1, 1), (1, 1), (0, 0), True, 1.0, dtype, fmt, bias_only=True)
    assert launches == 2
    assert_close(got[1], want[1], dtype, "split bias grad alone")


@INTERPRETER_ONLY
@pytest.mark.parametrize("sms, dtype, fmt", [(132, torch.float32, "nhwc"), (2, F64, "nchw")],
                         ids=["one-chunk-fp32-nhwc", "machine-filled-fp64-nchw"])
def test_whole_weight_grads_in_one_launch_match_float64(monkeypatch, sms, dtype, fmt):
    # S == 1 either because the pixels fit one chunk (2 * 8 * 8 = 128, the interpreter's chunk) or because the
    # unsplit tiles fill a wave (a 3x3's 9 tiles, four programs on each SM of a GPU of 2, 288 pixels): one launch
    # writes the grads
    monkeypatch.setattr(conv2d_backward, "_sm_count", lambda device: sms)
    side, k = (8, 5) if sms == 132 else (12, 3)
    gen = torch.Generator().manual_seed(sms)
    x, w, b = _wgrad_case(gen, (2, 5, side, side), (k, k), 6, dtype, fmt)
    assert weight_grad_splits(2 * side * side, 6, 5, k * k, DEVICE)[0] == 1
    want, got, launches = _weight_grads(x, w, b, (k, k), (1, 1), (k // 2, k // 2), True, 1.0, dtype, fmt)
    assert launches == 1
    assert_close(got[0], want[0], dtype, "whole weight grad")
    assert_close(got[1], want[1], dtype, "whole bias grad")


def test_split_weight_grads_sum_chunks_in_order_and_repeat_bitwise(monkeypatch):
    # the weight grad is the chunks' fp32 partials added from the first chunk to the last, whatever order the
    # programs ran in: two runs with the programs shuffled differently give the same bits
    gen = torch.Generator().manual_seed(9)
    x, w, b = _wgrad_case(gen, (2, 5, 12, 11), (3, 1), 7, torch.float32, "nhwc")
    partials = []
    reduce = conv2d_general_backward.reduce_partials

    def recorded(part, *args):
        reduce(part, *args)
        partials.append(part.clone())

    monkeypatch.setattr(conv2d_general_backward, "reduce_partials", recorded)
    runs = []
    for seed in (1, 2):
        with shuffled_programs(seed):
            runs.append(_weight_grads(x, w, b, (3, 1), (1, 1), (1, 0), True, 1.0, torch.float32, "nhwc")[1])
    assert all(torch.equal(a, b) for a, b in zip(*runs))
    part = partials[0]
    assert part.shape[0] > 1
    total = torch.zeros_like(part[0])
    for row in part:
        total = total + row
    r_w = 3 * 7 * 5
    assert torch.equal(runs[0][0], total[:r_w].view(3, 7, 5).permute(1, 2, 0).unsqueeze(3))
    assert torch.equal(runs[0][1], total[r_w:])


# (kind, kernel, stride, padding, ceil_mode, count_include_pad)
POOLS = [
    ("max", (3, 3), (2, 2), (0, 0), False, True),
    ("max", (3, 3), (2, 2), (0, 0), True, True),
    ("max", (3, 3), (1, 1), (1, 1), False, True),
    ("avg", (3, 3), (1, 1), (1, 1), False, True),
    ("avg", (3, 3), (1, 1), (1, 1), False, False),
    ("avg", (3, 3), (2, 2), (1, 1), True, False),
    ("avg", (3, 3), (2, 2), (1, 1), True, True),
    ("avg", (5, 5), (3, 3), (0, 0), False, True),
]


def _pool(x, kind, kernel, stride, padding, ceil_mode, count_include_pad):
    if kind == "max":
        return F.max_pool2d(x, kernel, stride, padding, ceil_mode=ceil_mode)
    return F.avg_pool2d(x, kernel, stride, padding, ceil_mode=ceil_mode, count_include_pad=count_include_pad)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp64", "fp32", "fp16"])
@pytest.mark.parametrize("pool", POOLS, ids=lambda v: str(v))
def test_pool_input_grad_matches_float64(pool, dtype):
    kind, kernel, stride, padding, ceil_mode, count_include_pad = pool
    gen = torch.Generator().manual_seed(11)
    x = _rand(gen, (2, 6, 9, 8), dtype, ints=kind == "max").requires_grad_()  # integers: many tied maxima
    y = _pool(x, *pool)
    grad_y = _rand(gen, tuple(y.shape), dtype)
    want = torch.autograd.grad(y, x, grad_y)[0]
    got = poisoned(tuple(x.shape), dtype, FORMATS["nhwc"])
    launch_pool2d_input_grad(_dev(grad_y, dtype), got, kind=kind, kernel=kernel, stride=stride, padding=padding,
                             count_include_pad=count_include_pad, x=_dev(x, dtype))
    assert_close(got, want, dtype, f"{kind} pool input grad")


def test_max_pool_grad_follows_nan_and_all_minus_inf_windows():
    # PyTorch's rule beyond ties: a NaN takes over (the last NaN of a window wins); a window of nothing but -inf
    # keeps its first tap inside the input (padding 1: not the window's first tap)
    gen = torch.Generator().manual_seed(13)
    x = torch.randn(1, 2, 5, 5, dtype=F64, generator=gen)
    x[0, 0, 1, 1] = x[0, 0, 1, 2] = float("nan")
    x[0, 1, :3, :3] = float("-inf")
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    y = F.max_pool2d(x, 3, 2, 1, ceil_mode=True)
    grad_y = torch.randn(y.shape, dtype=F64, generator=gen)
    want = torch.autograd.grad(y, x, grad_y)[0]
    got = poisoned(tuple(x.shape), F64, FORMATS["nhwc"])
    launch_pool2d_input_grad(_dev(grad_y, F64), got, kind="max", kernel=(3, 3), stride=(2, 2), padding=(1, 1),
                             x=_dev(x, F64))
    assert_close(got, want, F64, "max pool grad with NaN and -inf windows")


def test_pool_grad_through_bias_relu_epilogue_accumulates():
    # a commuted head's pool: y = relu(avg_pool(z) + b); the grad of z added to what the buffer holds
    gen = torch.Generator().manual_seed(12)
    z = _rand(gen, (2, 4, 6, 7), F64).requires_grad_()
    b = _rand(gen, (4,), F64)
    y = (F.avg_pool2d(z, 3, 1, 1, count_include_pad=False) + b[:, None, None]).relu()
    grad_y = _rand(gen, tuple(y.shape), F64)
    held = _rand(gen, tuple(z.shape), F64)
    want = held + torch.autograd.grad(y, z, grad_y)[0]
    got = _dev(held, F64)
    launch_pool2d_input_grad(_dev(grad_y, F64), got, kind="avg", kernel=(3, 3), stride=(1, 1), padding=(1, 1),
                             count_include_pad=False, y=_dev(y, F64), relu=True, accumulate=True)
    assert_close(got, want, F64, "pool grad through the epilogue")
