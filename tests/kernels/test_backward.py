"""Backward kernels against float64 PyTorch autograd.

Inputs are drawn in float64 and rounded to the dtype under test; the reference runs in float64 on those same rounded
values. So the only differences left are the kernels' fp32 accumulation order and the final rounding of each
gradient to the dtype (at most 2**-11 relative per element in fp16): the plain per-dtype tolerances of
fastinception.testing apply to gradients too, with no loosening for fp16. The same rounding keeps ReLU masks and
max-pool argmaxes identical between kernel and reference (ties included).
Outputs are NaN-poisoned before each launch so unwritten elements fail; channels outside a slice view are NaN too,
so reading outside a slice fails.
"""
import zlib

import pytest
import torch
import torch.nn.functional as F

from fastinception.kernels.checked import (
    conv2d_relu_input_grad,
    conv2d_relu_weight_grad,
    stem_input_grad,
    stem_weight_grad,
)

from helpers import CUDA, REL_TOL, assert_close, shuffled_programs, tf32_tol

F64 = torch.float64
NAN = float("nan")
CPU_DTYPES = [torch.float64, torch.float32, torch.float16]
BF16_SKIP = "bf16 gives wrong results under the Triton interpreter; tested on GPU"
ON_GPU = torch.cuda.is_available()
DEVICE = "cuda" if ON_GPU else "cpu"
DTYPES = CPU_DTYPES + [pytest.param(
    torch.bfloat16, marks=pytest.mark.skipif(not ON_GPU, reason=BF16_SKIP))]


def rand(*shape, dtype, gen, ints=False):
    """float64 random values exactly representable in ``dtype`` (never zeros)."""
    if ints:  # few distinct values: many max-pool ties
        v = torch.randint(0, 3, shape, generator=gen).to(F64)
    else:
        v = torch.randn(shape, generator=gen, dtype=F64)
    return v.to(dtype).to(F64)


def fmt_of(name):
    return torch.channels_last if name == "nhwc" else torch.contiguous_format


def to_dev(t, dtype, fmt="nchw"):
    """Copy of a float64 tensor in ``dtype`` and memory format ``fmt`` on the test device."""
    t = t.detach().to(dtype).to(DEVICE)
    if t.dim() == 4:
        t = t.contiguous(memory_format=fmt_of(fmt))
    return t


def nan_like(shape, dtype, fmt="nchw"):
    return torch.full(shape, NAN, dtype=dtype, device=DEVICE).contiguous(
        memory_format=fmt_of(fmt) if len(shape) == 4 else torch.contiguous_format)


def slice_view(t, dtype, fmt, before, after):
    """``t`` as channels [before, before + C) of a NaN-filled (N, before + C + after, H, W) tensor in ``fmt``."""
    n, c, h, w = t.shape
    big = nan_like((n, before + c + after, h, w), dtype, fmt)
    view = big[:, before:before + c]
    view.copy_(t.detach().to(dtype))
    return view


def tol(dtype, allow_tf32=False):
    return tf32_tol() if (dtype == torch.float32 and allow_tf32) else REL_TOL[dtype]


# ----------------------------------------------------------------------------------------------------------------------
# conv2d + ReLU backward (the 3x3 / 5x5 branches)

def conv_problem(n, cin, cout, h, w, k, seed, dtype=torch.float32):
    """Reference for t = relu(s), y = relu(conv2d(t, W, b, padding k // 2)) with upstream grad_y."""
    gen = torch.Generator().manual_seed(seed)
    s = rand(n, cin, h, w, dtype=dtype, gen=gen).requires_grad_()
    weight = rand(cout, cin, k, k, dtype=dtype, gen=gen).requires_grad_()
    bias = rand(cout, dtype=dtype, gen=gen).requires_grad_()
    t = F.relu(s)
    y = F.relu(F.conv2d(t, weight, bias, padding=k // 2))
    grad_y = rand(n, cout, h, w, dtype=dtype, gen=gen)
    gs, gw, gb = torch.autograd.grad(y, (s, weight, bias), grad_y)
    return dict(t=t.detach(), y=y.detach(), weight=weight.detach(), grad_y=grad_y, grad_t=gs, grad_weight=gw,
                grad_bias=gb)


def check_conv_grads(ref, dtype, grad_y, y, weight, t, gt_fmt, gw_fmt):
    """Both conv backward launchers into NaN-filled outputs (grad_t in ``gt_fmt``, grad_weight in ``gw_fmt``),
    checked against the reference."""
    grad_t = nan_like(t.shape, dtype, gt_fmt)
    assert conv2d_relu_input_grad(grad_y, y, weight, t, grad_t) is grad_t
    assert_close(grad_t, ref["grad_t"], dtype, "grad_t")
    gw, gb = nan_like(weight.shape, dtype, gw_fmt), nan_like((weight.shape[0],), dtype)
    assert conv2d_relu_weight_grad(grad_y, y, t, gw, gb) is None
    assert_close(gw, ref["grad_weight"], dtype, "grad_weight")
    assert_close(gb, ref["grad_bias"], dtype, "grad_bias")


# (N, Cin, Cout, H, W, k, activation format, grad_t format)
CONV_CASES = [
    (1, 1, 1, 1, 1, 1, "nchw", "nchw"),
    (2, 3, 17, 5, 7, 3, "nhwc", "nhwc"),
    (3, 17, 3, 4, 12, 5, "nchw", "nhwc"),
    (1, 5, 4, 12, 3, 7, "nhwc", "nchw"),
    (2, 33, 20, 6, 1, 3, "nhwc", "nhwc"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "x".join(map(str, c)))
def test_conv_backward(case, dtype):
    n, cin, cout, h, w, k, fmt, gt_fmt = case
    ref = conv_problem(n, cin, cout, h, w, k, seed=zlib.crc32(repr(case).encode()), dtype=dtype)
    grad_y = slice_view(ref["grad_y"], dtype, fmt, 2, 3)  # channel slices of grad_out / out
    y = slice_view(ref["y"], dtype, fmt, 2, 3)
    weight = to_dev(ref["weight"], dtype, fmt)
    t = to_dev(ref["t"], dtype, fmt)
    check_conv_grads(ref, dtype, grad_y, y, weight, t, gt_fmt, fmt)


@pytest.mark.slow  # GoogLeNet's real channel counts; the default run's cases span several channel blocks too
def test_conv_backward_googlenet_channels():
    # block 3a's 3x3 branch: 96 -> 128 channels
    dtype = torch.float32
    ref = conv_problem(1, 96, 128, 4, 3, 3, seed=7)
    grad_y, y = slice_view(ref["grad_y"], dtype, "nhwc", 64, 64), slice_view(ref["y"], dtype, "nhwc", 64, 64)
    weight, t = to_dev(ref["weight"], dtype), to_dev(ref["t"], dtype, "nhwc")
    check_conv_grads(ref, dtype, grad_y, y, weight, t, "nhwc", "nchw")


def test_conv_backward_tf32_and_forced_config():
    dtype = torch.float32
    ref = conv_problem(2, 19, 18, 5, 6, 3, seed=11)
    grad_y, y = to_dev(ref["grad_y"], dtype), to_dev(ref["y"], dtype)
    weight, t = to_dev(ref["weight"], dtype), to_dev(ref["t"], dtype)
    grad_t = nan_like(t.shape, dtype)
    conv2d_relu_input_grad(grad_y, y, weight, t, grad_t, allow_tf32=True)
    assert_close(grad_t, ref["grad_t"], dtype, "grad_t tf32", tol=tol(dtype, allow_tf32=True))
    cfg = {"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16, "num_warps": 2, "num_stages": 2}
    grad_t = nan_like(t.shape, dtype)
    conv2d_relu_input_grad(grad_y, y, weight, t, grad_t, config=cfg)
    assert_close(grad_t, ref["grad_t"], dtype, "grad_t forced config")
    gw = nan_like(weight.shape, dtype)
    conv2d_relu_weight_grad(grad_y, y, t, gw, None, config=cfg)
    assert_close(gw, ref["grad_weight"], dtype, "grad_weight forced config")
    with pytest.raises(ValueError, match="BLOCK_K"):
        conv2d_relu_input_grad(grad_y, y, weight, t, grad_t, config={"BLOCK_M": 16, "BLOCK_N": 16})
    with pytest.raises(ValueError, match="unknown config keys"):
        conv2d_relu_input_grad(grad_y, y, weight, t, grad_t, config={**cfg, "GROUP": 8})


@pytest.mark.parametrize("dtype", [torch.float32, pytest.param(torch.float16, marks=pytest.mark.slow)])
def test_conv_weight_grad_deterministic(dtype):
    # 3 * 10 * 11 = 330 pixels: several reduction chunks under the interpreter
    ref = conv_problem(3, 6, 5, 10, 11, 3, seed=3, dtype=dtype)
    args = [slice_view(ref["grad_y"], dtype, "nhwc", 1, 0), slice_view(ref["y"], dtype, "nhwc", 1, 0),
            to_dev(ref["t"], dtype, "nhwc")]
    runs = []
    for seed in range(2):  # programs in two different orders (on a GPU: whatever order the hardware picks)
        gw, gb = nan_like((5, 6, 3, 3), dtype), nan_like((5,), dtype)
        with shuffled_programs(seed):
            conv2d_relu_weight_grad(*args, gw, gb)
        runs.append((gw, gb))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    # the atomic path computes the same sums (up to order)
    gw, gb = nan_like((5, 6, 3, 3), dtype), nan_like((5,), dtype)
    conv2d_relu_weight_grad(*args, gw, gb, deterministic=False)
    assert_close(gw, ref["grad_weight"], dtype, "grad_weight atomic")
    assert_close(gb, ref["grad_bias"], dtype, "grad_bias atomic")


def test_conv_input_grad_deterministic():
    dtype = torch.float32
    ref = conv_problem(2, 7, 9, 6, 5, 5, seed=5)
    args = [to_dev(ref[k], dtype) for k in ("grad_y", "y", "weight", "t")]
    a, b = nan_like(args[3].shape, dtype), nan_like(args[3].shape, dtype)
    conv2d_relu_input_grad(*args, a)
    conv2d_relu_input_grad(*args, b)
    assert torch.equal(a, b)


def test_conv_weight_grad_optional_outputs_and_param_dtype():
    dtype = torch.float16
    ref = conv_problem(2, 4, 3, 5, 4, 3, seed=9, dtype=dtype)
    grad_y, y, t = (to_dev(ref[k], dtype) for k in ("grad_y", "y", "t"))
    gb = nan_like((3,), dtype)
    conv2d_relu_weight_grad(grad_y, y, t, None, gb)
    assert_close(gb, ref["grad_bias"], dtype, "grad_bias only")
    gw = nan_like((3, 4, 3, 3), torch.float32)  # fp32 master weights for fp16 activations
    conv2d_relu_weight_grad(grad_y, y, t, gw, None)
    assert gw.dtype == torch.float32
    assert_close(gw, ref["grad_weight"], dtype, "grad_weight only, fp32 output")
    assert conv2d_relu_weight_grad(grad_y, y, t, None, None) is None


def test_conv_zero_size():
    dtype = torch.float32
    grad_y = torch.randn(0, 3, 4, 4, device=DEVICE)
    y, t = torch.randn(0, 3, 4, 4, device=DEVICE), torch.randn(0, 2, 4, 4, device=DEVICE)
    weight = torch.randn(3, 2, 3, 3, device=DEVICE)
    grad_t = torch.empty(0, 2, 4, 4, device=DEVICE)
    assert conv2d_relu_input_grad(grad_y, y, weight, t, grad_t) is grad_t
    gw, gb = nan_like((3, 2, 3, 3), dtype), nan_like((3,), dtype)
    conv2d_relu_weight_grad(grad_y, y, t, gw, gb)  # no pixels: the gradients are zeros
    assert torch.equal(gw, torch.zeros_like(gw)) and torch.equal(gb, torch.zeros_like(gb))


def test_conv_bad_inputs(monkeypatch):
    gy, y = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    w, t, gt = torch.randn(3, 2, 3, 3), torch.randn(1, 2, 4, 4), torch.empty(1, 2, 4, 4)
    with pytest.raises(ValueError, match=r"k odd, got \(3, 2, 2, 2\)"):
        conv2d_relu_input_grad(gy, y, torch.randn(3, 2, 2, 2), t, gt)
    with pytest.raises(ValueError, match=r"y: expected shape \(1, 3, 4, 4\), got \(1, 3, 4, 5\)"):
        conv2d_relu_input_grad(gy, torch.randn(1, 3, 4, 5), w, t, gt)
    with pytest.raises(TypeError, match="t: expected dtype torch.float32, got torch.float64"):
        conv2d_relu_input_grad(gy, y, w, t.double(), gt)
    with pytest.raises(TypeError, match="expected a dtype in"):
        conv2d_relu_input_grad(gy.int(), y, w, t, gt)
    with pytest.raises(ValueError, match="4-d"):
        conv2d_relu_input_grad(gy[0], y, w, t, gt)
    with pytest.raises(ValueError, match=r"grad_weight: expected shape \(3, 2, 3, 3\), got \(3, 3, 3, 3\)"):
        conv2d_relu_weight_grad(gy, y, t, torch.empty(3, 3, 3, 3), None)
    with pytest.raises(ValueError, match=r"grad_bias: expected shape \(3,\), got \(4,\)"):
        conv2d_relu_weight_grad(gy, y, t, None, torch.empty(4))
    if not ON_GPU:
        monkeypatch.setenv("TRITON_INTERPRET", "0")
        with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
            conv2d_relu_input_grad(gy, y, w, t, gt)


# ----------------------------------------------------------------------------------------------------------------------
# stem backward (the three 1x1 convs on x and the pool branch)

def stem_problem(n, cin, c1, c2a, c3a, c4, h, w, seed, dtype=torch.float32, ints=False, x=None):
    gen = torch.Generator().manual_seed(seed)
    x = rand(n, cin, h, w, dtype=dtype, gen=gen, ints=ints) if x is None else x.to(F64)
    x.requires_grad_()
    ws = [rand(c, cin, 1, 1, dtype=dtype, gen=gen).requires_grad_() for c in (c1, c2a, c3a, c4)]
    bs = [rand(c, dtype=dtype, gen=gen).requires_grad_() for c in (c1, c2a, c3a, c4)]
    out1 = F.relu(F.conv2d(x, ws[0], bs[0]))
    t2 = F.relu(F.conv2d(x, ws[1], bs[1]))
    t3 = F.relu(F.conv2d(x, ws[2], bs[2]))
    out4 = F.relu(F.conv2d(F.max_pool2d(x, 3, stride=1, padding=1), ws[3], bs[3]))
    ups = [rand(*o.shape, dtype=dtype, gen=gen) for o in (out1, t2, t3, out4)]
    loss = sum((o * u).sum() for o, u in zip((out1, t2, t3, out4), ups))
    grads = torch.autograd.grad(loss, [x, *ws, *bs])
    return dict(x=x.detach(), out1=out1.detach(), out4=out4.detach(), ws=[v.detach() for v in ws],
                grad_out1=ups[0], grad_out4=ups[3],
                # pre-activation grads, exact in dtype; zero where t <= 0 as ReLU's backward (NaN t passes)
                grad_t2=torch.where(t2 <= 0, 0.0, ups[1]), grad_t3=torch.where(t3 <= 0, 0.0, ups[2]),
                grad_x=grads[0], grad_ws=grads[1:5], grad_bs=grads[5:9])


def stem_inputs(ref, dtype, fmt, c2b=3, c3b=2):
    """Kernel inputs: grad_out1 / grad_out4 (and out1 / out4) are channel slices of one NaN-filled
    (N, c1 + c2b + c3b + c4, H, W) grad_out (out); the p2 / p3 channels between them stay NaN."""
    c1, c4 = ref["out1"].shape[1], ref["out4"].shape[1]
    mid = c2b + c3b
    return dict(
        x=to_dev(ref["x"], dtype, fmt),
        grad_out1=slice_view(ref["grad_out1"], dtype, fmt, 0, mid + c4),
        out1=slice_view(ref["out1"], dtype, fmt, 0, mid + c4),
        grad_t2=to_dev(ref["grad_t2"], dtype, fmt),
        grad_t3=to_dev(ref["grad_t3"], dtype, "nchw"),
        grad_out4=slice_view(ref["grad_out4"], dtype, fmt, c1 + mid, 0),
        out4=slice_view(ref["out4"], dtype, fmt, c1 + mid, 0),
    )


def stem_weights(ref, dtype, fmt="nchw"):
    """w1 / w2a / w3a / w4 keyword arguments of stem_input_grad."""
    return dict(zip(("w1", "w2a", "w3a", "w4"), (to_dev(v, dtype, fmt) for v in ref["ws"])))


STEM_WEIGHT_GRADS = ("gw1", "gw2a", "gw3a", "gw4", "gb1", "gb2a", "gb3a", "gb4")


def stem_weight_outputs(ref, dtype):
    """NaN-filled gw1..gw4, gb1..gb4 keyword outputs of stem_weight_grad."""
    outs = [nan_like(v.shape, dtype) for v in ref["ws"]] + [nan_like((v.shape[0],), dtype) for v in ref["ws"]]
    return dict(zip(STEM_WEIGHT_GRADS, outs))


def run_stem(ref, dtype, fmt, deterministic=True, allow_tf32=False):
    inp = stem_inputs(ref, dtype, fmt)
    grad_x = nan_like(ref["x"].shape, dtype, fmt)
    out = stem_input_grad(**inp, **stem_weights(ref, dtype, fmt), grad_x=grad_x, allow_tf32=allow_tf32)
    assert out is grad_x
    outs = stem_weight_outputs(ref, dtype)
    stem_weight_grad(**inp, **outs, deterministic=deterministic)
    outs = list(outs.values())
    return grad_x, outs[:4], outs[4:]


def check_stem(ref, dtype, grad_x, gws, gbs, tolerance=None):
    assert_close(grad_x, ref["grad_x"], dtype, "grad_x", tol=tolerance)
    for name, a, e in zip(("gw1", "gw2a", "gw3a", "gw4"), gws, ref["grad_ws"]):
        assert_close(a, e, dtype, name, tol=tolerance)
    for name, a, e in zip(("gb1", "gb2a", "gb3a", "gb4"), gbs, ref["grad_bs"]):
        assert_close(a, e, dtype, name, tol=tolerance)


# (N, Cin, c1, c2a, c3a, c4, H, W, format, integer-valued x with many max-pool ties)
STEM_CASES = [
    (1, 1, 1, 1, 1, 1, 1, 1, "nchw", False),
    (2, 3, 3, 17, 1, 5, 5, 7, "nhwc", True),
    (3, 17, 4, 2, 3, 17, 7, 3, "nchw", True),
    (1, 40, 33, 5, 6, 7, 12, 2, "nhwc", False),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", STEM_CASES, ids=lambda c: "x".join(map(str, c)))
def test_stem_backward(case, dtype):
    *shape, fmt, ints = case
    ref = stem_problem(*shape, seed=zlib.crc32(repr(case).encode()), dtype=dtype, ints=ints)
    check_stem(ref, dtype, *run_stem(ref, dtype, fmt))


@pytest.mark.parametrize("fmt", ["nchw", "nhwc"])
def test_stem_maxpool_ties_match_pytorch(fmt):
    # integer-valued x (values 0..2, and a constant plane): most windows have tied maxima; float64 with a tight
    # tolerance, so a gradient routed to any other tied position than PyTorch's would fail.
    dtype = torch.float64
    ref = stem_problem(2, 3, 2, 2, 2, 4, 9, 11, seed=21, dtype=dtype, ints=True)
    check_stem(ref, dtype, *run_stem(ref, dtype, fmt))
    gen = torch.Generator().manual_seed(4)
    x = torch.ones(2, 2, 6, 5, dtype=dtype)  # plane 0: every window fully tied; plane 1: two values
    x[:, 1] = torch.randint(0, 2, (2, 6, 5), generator=gen).to(dtype)
    ref = stem_problem(2, 2, 1, 1, 1, 3, 6, 5, seed=22, dtype=dtype, x=x)
    check_stem(ref, dtype, *run_stem(ref, dtype, fmt))


def test_stem_input_grad_nan_and_inf_like_pytorch():
    # A window whose in-image values are all -inf routes its gradient to its first in-image position; NaN always
    # wins, the last NaN of the scan. NaN outputs pass their gradient through the ReLU (PyTorch zeroes only where
    # the output is <= 0). grad_x stays finite: it needs x only for the argmax.
    dtype = torch.float64
    gen = torch.Generator().manual_seed(91)
    x = torch.randint(0, 3, (2, 3, 6, 7), generator=gen).to(dtype)
    x[:, 0, 0:2, 0:2] = float("-inf")
    x[0, 1, 3, 3] = x[0, 1, 4, 2] = x[1, 2, 0, 6] = NAN
    ref = stem_problem(2, 3, 2, 3, 2, 4, 6, 7, seed=92, dtype=dtype, x=x)
    assert torch.isfinite(ref["grad_x"]).all() and ref["out4"].isnan().any()
    grad_x = nan_like(x.shape, dtype, "nhwc")
    stem_input_grad(**stem_inputs(ref, dtype, "nhwc"), **stem_weights(ref, dtype), grad_x=grad_x)
    assert_close(grad_x, ref["grad_x"], dtype, "grad_x with NaN and -inf in x")


@pytest.mark.slow  # block 3a's real channel counts; the default run's stem cases span several channel blocks too
def test_stem_backward_googlenet_3a():
    # block 3a: Cin 192, c1 64, c2a 96, c3a 16, c4 32 (c2b 128, c3b 32 in grad_out between the slices)
    dtype = torch.float32
    ref = stem_problem(1, 192, 64, 96, 16, 32, 4, 3, seed=31)
    check_stem(ref, dtype, *run_stem(ref, dtype, "nhwc"))


def test_stem_tf32_and_atomic():
    dtype = torch.float32
    ref = stem_problem(2, 9, 5, 4, 3, 6, 6, 5, seed=41)
    grad_x, gws, gbs = run_stem(ref, dtype, "nhwc", deterministic=False, allow_tf32=True)
    check_stem(ref, dtype, grad_x, gws, gbs, tolerance=tf32_tol())


def test_stem_weight_grad_deterministic():
    dtype = torch.float32
    ref = stem_problem(3, 6, 3, 4, 2, 5, 10, 11, seed=51)  # 330 pixels: several chunks under the interpreter
    inp = stem_inputs(ref, dtype, "nhwc")
    runs = []
    for seed in range(2):  # programs in two different orders
        outs = stem_weight_outputs(ref, dtype)
        with shuffled_programs(seed):
            stem_weight_grad(**inp, **outs)
        runs.append(list(outs.values()))
    for a, b in zip(*runs):
        assert torch.equal(a, b)
    for name, a, e in zip(STEM_WEIGHT_GRADS, runs[0], [*ref["grad_ws"], *ref["grad_bs"]]):
        assert_close(a, e, dtype, name)


def test_stem_weight_grad_optional_outputs():
    dtype = torch.float32
    ref = stem_problem(2, 5, 3, 4, 2, 3, 4, 5, seed=61)
    inp = stem_inputs(ref, dtype, "nchw")
    none = dict.fromkeys(STEM_WEIGHT_GRADS)
    assert stem_weight_grad(**inp, **none) is None
    gb4 = nan_like((3,), dtype)  # pool group, bias only
    stem_weight_grad(**inp, **{**none, "gb4": gb4})
    assert_close(gb4, ref["grad_bs"][3], dtype, "gb4 only")
    gw2a, gb1 = nan_like((4, 5, 1, 1), dtype), nan_like((3,), dtype)  # 1x1 group only, mixed
    stem_weight_grad(**inp, **{**none, "gw2a": gw2a, "gb1": gb1})
    assert_close(gw2a, ref["grad_ws"][1], dtype, "gw2a only")
    assert_close(gb1, ref["grad_bs"][0], dtype, "gb1 only")
    gw4 = nan_like((3, 5, 1, 1), torch.float64)  # an output dtype of its own
    stem_weight_grad(**inp, **{**none, "gw4": gw4})
    assert_close(gw4, ref["grad_ws"][3], dtype, "gw4 only, fp64 output")


def test_stem_zero_size():
    dtype = torch.float32
    ref = stem_problem(1, 3, 2, 2, 2, 2, 3, 3, seed=71)
    inp = {k: v[:0] for k, v in stem_inputs(ref, dtype, "nchw").items()}
    grad_x = torch.empty(0, 3, 3, 3, device=DEVICE)
    assert stem_input_grad(**inp, **stem_weights(ref, dtype), grad_x=grad_x) is grad_x
    outs = stem_weight_outputs(ref, dtype)
    stem_weight_grad(**inp, **outs)
    for o in outs.values():  # no pixels: the gradients are zeros
        assert torch.equal(o, torch.zeros_like(o))


def test_stem_bad_inputs():
    dtype = torch.float32
    ref = stem_problem(1, 3, 2, 2, 2, 2, 3, 3, seed=81)
    inp = stem_inputs(ref, dtype, "nchw")
    ws = stem_weights(ref, dtype)
    gx = torch.empty(1, 3, 3, 3, device=DEVICE)
    with pytest.raises(ValueError, match=r"w4: expected shape \(2, 3, 1, 1\), got \(2, 3, 3, 3\)"):
        stem_input_grad(**inp, **{**ws, "w4": torch.randn(2, 3, 3, 3, device=DEVICE)}, grad_x=gx)
    with pytest.raises(ValueError, match=r"out1: expected shape \(1, 2, 3, 3\), got \(1, 3, 3, 3\)"):
        stem_input_grad(**{**inp, "out1": torch.randn(1, 3, 3, 3, device=DEVICE)}, **ws, grad_x=gx)
    with pytest.raises(TypeError, match="grad_t3: expected dtype torch.float32, got torch.float16"):
        stem_input_grad(**{**inp, "grad_t3": inp["grad_t3"].half()}, **ws, grad_x=gx)
    with pytest.raises(ValueError, match=r"grad_x: expected shape \(1, 3, 3, 3\), got \(1, 3, 3, 2\)"):
        stem_input_grad(**inp, **ws, grad_x=gx[..., :2])
    with pytest.raises(ValueError, match=r"gb2a: expected shape \(2,\), got \(3,\)"):
        stem_weight_grad(**inp, **{**dict.fromkeys(STEM_WEIGHT_GRADS), "gb2a": torch.empty(3, device=DEVICE)})


# ----------------------------------------------------------------------------------------------------------------------
# atomics across channel blocks, the order of programs, saved outputs in layouts of their own, ReLU masks

@pytest.mark.skipif(CUDA, reason="the program order is the GPU's own there: a grid this small may add its atomics in "
                    "the same order every run, so changed bits cannot be asserted")
def test_atomics_change_bits_when_programs_run_in_another_order():
    # the determinism tests above can fail: under shuffled program orders the atomic path's sums come out in other
    # bits (fp32 addition is not associative), while the deterministic path's do not
    dtype = torch.float32
    ref = conv_problem(3, 6, 5, 10, 11, 3, seed=3, dtype=dtype)
    args = [to_dev(ref[k], dtype, "nhwc") for k in ("grad_y", "y", "t")]
    runs = []
    for seed in range(4):
        gw = nan_like((5, 6, 3, 3), dtype)
        with shuffled_programs(seed):
            conv2d_relu_weight_grad(*args, gw, None, deterministic=False)
        runs.append(gw)
    assert any(not torch.equal(runs[0], r) for r in runs[1:])


@pytest.mark.parametrize("deterministic", [True, False], ids=["split", "atomic"])
def test_conv_weight_grad_spans_several_channel_blocks(deterministic):
    # 40 input and 36 output channels: more than one 32-channel block of each under the interpreter, so every
    # (pixel chunk, output-channel block) has several programs and exactly one of them may add the bias
    dtype = torch.float32
    ref = conv_problem(2, 40, 36, 7, 6, 3, seed=12, dtype=dtype)
    grad_y, y, t = (to_dev(ref[k], dtype, "nhwc") for k in ("grad_y", "y", "t"))
    gw, gb = nan_like((36, 40, 3, 3), dtype), nan_like((36,), dtype)
    with shuffled_programs(5):
        conv2d_relu_weight_grad(grad_y, y, t, gw, gb, deterministic=deterministic)
    assert_close(gw, ref["grad_weight"], dtype, "grad_weight")
    assert_close(gb, ref["grad_bias"], dtype, "grad_bias")


@pytest.mark.parametrize("deterministic", [True, False], ids=["split", "atomic"])
def test_stem_weight_grad_spans_several_channel_blocks(deterministic):
    dtype = torch.float32
    ref = stem_problem(2, 40, 33, 5, 4, 34, 5, 6, seed=52)
    inp = stem_inputs(ref, dtype, "nhwc")
    outs = stem_weight_outputs(ref, dtype)
    with shuffled_programs(6):
        stem_weight_grad(**inp, **outs, deterministic=deterministic)
    for name, a, e in zip(STEM_WEIGHT_GRADS, outs.values(), [*ref["grad_ws"], *ref["grad_bs"]]):
        assert_close(a, e, dtype, name)


def test_conv_backward_reads_the_saved_output_with_its_own_strides():
    # grad_y a channels_last slice, y (or its ReLU mask) NCHW: reading y with grad_y's strides would pass when the
    # two share a layout, as they do when both are slices of grad_out and out
    dtype = torch.float32
    ref = conv_problem(2, 5, 6, 5, 7, 3, seed=13, dtype=dtype)
    grad_y = slice_view(ref["grad_y"], dtype, "nhwc", 2, 1)
    weight, t = to_dev(ref["weight"], dtype), to_dev(ref["t"], dtype, "nhwc")
    mask = ((ref["y"] > 0) | ref["y"].isnan()).to(torch.uint8).to(DEVICE)
    for what, y in (("output", to_dev(ref["y"], dtype, "nchw")), ("mask", mask)):
        grad_t = nan_like(t.shape, dtype, "nchw")
        conv2d_relu_input_grad(grad_y, y, weight, t, grad_t)
        assert_close(grad_t, ref["grad_t"], dtype, f"grad_t from the saved {what}")
        gw, gb = nan_like(weight.shape, dtype), nan_like((6,), dtype)
        conv2d_relu_weight_grad(grad_y, y, t, gw, gb)
        assert_close(gw, ref["grad_weight"], dtype, f"grad_weight from the saved {what}")
        assert_close(gb, ref["grad_bias"], dtype, f"grad_bias from the saved {what}")


def test_stem_backward_reads_the_saved_outputs_with_their_own_strides():
    dtype = torch.float32
    ref = stem_problem(2, 6, 3, 4, 2, 5, 5, 4, seed=53)
    inp = stem_inputs(ref, dtype, "nhwc")
    # out1 / out4 (and then their masks) in NCHW, apart from grad_out's channels_last slices
    saved = {"output": {k: to_dev(ref[k], dtype, "nchw") for k in ("out1", "out4")},
             "mask": {k: ((ref[k] > 0) | ref[k].isnan()).to(torch.uint8).to(DEVICE) for k in ("out1", "out4")}}
    for what, outs in saved.items():
        grad_x = nan_like(ref["x"].shape, dtype, "nhwc")
        stem_input_grad(**{**inp, **outs}, **stem_weights(ref, dtype), grad_x=grad_x)
        assert_close(grad_x, ref["grad_x"], dtype, f"grad_x from the saved {what}")
        gouts = stem_weight_outputs(ref, dtype)
        stem_weight_grad(**{**inp, **outs}, **gouts)
        for name, a, e in zip(STEM_WEIGHT_GRADS, gouts.values(), [*ref["grad_ws"], *ref["grad_bs"]]):
            assert_close(a, e, dtype, f"{name} from the saved {what}")
