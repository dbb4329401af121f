"""Forward kernels (conv2d_bias_relu, stem_forward) against float64 PyTorch references.

Runs on CPU under the Triton interpreter (small shapes) and on CUDA. Every output is a view into a
larger NaN-poisoned buffer: the view must be fully written and correct, everything else must stay NaN.
"""
import pytest
import torch
import torch.nn.functional as F

from fastinception.kernels.checked import conv2d_bias_relu, stem_forward

from helpers import (
    BF16_SKIP,
    CL,
    CUDA,
    DEVICE,
    GPU_ONLY,
    GPU_TILE_CONFIGS,
    NCHW,
    TF32_REL_TOL,
    assert_close,
    assert_untouched,
    conv_ref,
    layout_id,
    make_input,
    make_weight,
    poisoned,
    randn,
    seeded_cases,
    stem_ref,
)

# ---------------------------------------------------------------------------------------------
# conv2d_bias_relu

_CHANNELS = [1, 3, 17, 33, 8, 20, 40]


def _conv_cases(count, dtypes, seed):
    # seeded random shapes; k is cycled with the dtype and layouts
    return seeded_cases(count, dtypes, seed, lambda rng, i: dict(
        N=rng.randint(1, 3),
        Cin=rng.choice(_CHANNELS),
        Cout=rng.choice(_CHANNELS),
        H=rng.randint(1, 12),
        W=rng.randint(1, 12),
        k=(1, 3, 5, 7)[i % 4],
        x_slice=i % 3 == 0,
        w_cl=i % 5 == 1,
        offset=rng.choice([1, 4, 7]),
    ))


def _case_id(c):
    return f"{str(c['dtype'])[6:]}-N{c['N']}-{c['Cin']}to{c['Cout']}-{c['H']}x{c['W']}-k{c['k']}" + layout_id(c)


CONV_CASES = _conv_cases(16, (torch.float32, torch.float16, torch.float64), seed=1)
# keep the interpreter time in check: the widest k=7 cases get small channel counts
for _c in CONV_CASES:
    if _c["k"] == 7:
        _c["Cin"], _c["Cout"] = min(_c["Cin"], 17), min(_c["Cout"], 17)


def run_conv_case(c, allow_tf32=False, config=None, tol=None):
    gen = torch.Generator().manual_seed(c["seed"])
    dtype = c["dtype"]
    x = make_input((c["N"], c["Cin"], c["H"], c["W"]), c["x_format"], dtype, DEVICE, gen=gen,
                   channel_slice=c["x_slice"])
    w = make_weight(gen, (c["Cout"], c["Cin"], c["k"], c["k"]), dtype, c["w_cl"])
    b = randn(gen, (c["Cout"],), dtype)
    off = c["offset"]
    big = poisoned((c["N"], off + c["Cout"] + 3, c["H"], c["W"]), dtype, c["out_format"])
    out = big[:, off : off + c["Cout"]]

    ret = conv2d_bias_relu(x, w, b, out, allow_tf32=allow_tf32, config=config)

    assert ret is out
    keep = torch.zeros(big.shape[1], dtype=torch.bool)
    keep[off : off + c["Cout"]] = True
    assert_untouched(big, keep)
    assert_close(out, conv_ref(x, w, b), dtype, f"conv {_case_id(c)}", tol=tol)


@pytest.mark.parametrize("case", CONV_CASES, ids=_case_id)
def test_conv2d_bias_relu(case):
    run_conv_case(case)


@BF16_SKIP
@pytest.mark.parametrize("case", _conv_cases(4, (torch.bfloat16,), seed=2), ids=_case_id)
def test_conv2d_bias_relu_bf16(case):
    run_conv_case(case)


@pytest.mark.parametrize("Cin,Cout,k", [(96, 128, 3), (16, 32, 5)], ids=["3a-p2_2", "3a-p3_2"])
def test_conv2d_googlenet_channels(Cin, Cout, k):
    # block 3a's two spatial convs on a tiny image
    case = dict(N=1, Cin=Cin, Cout=Cout, H=4, W=3, k=k, dtype=torch.float32, x_format=CL, out_format=CL,
                x_slice=False, w_cl=False, offset=64, seed=Cin)
    run_conv_case(case)


def test_conv2d_forced_config():
    case = dict(N=2, Cin=20, Cout=17, H=5, W=6, k=3, dtype=torch.float32, x_format=CL, out_format=NCHW,
                x_slice=True, w_cl=False, offset=2, seed=7)
    run_conv_case(case, config={"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16, "num_warps": 4, "num_stages": 1})


def test_conv2d_relu_clamps_and_nan_propagates():
    # relu really clamps (negative bias drives most outputs below 0), and a NaN in x reaches exactly the
    # output pixels whose k x k window contains it, as in PyTorch
    gen = torch.Generator().manual_seed(11)
    x = randn(gen, (2, 3, 6, 7), torch.float32)
    x[1, 2, 0, 6] = float("nan")
    w = make_weight(gen, (5, 3, 3, 3), torch.float32)
    b = randn(gen, (5,), torch.float32) - 1.0
    out = poisoned((2, 5, 6, 7), torch.float32, NCHW)
    conv2d_bias_relu(x, w, b, out)
    ref = conv_ref(x, w, b)
    assert torch.equal(torch.isnan(out), torch.isnan(ref))
    ok = ~torch.isnan(ref)
    assert (ref[ok] == 0).any()
    assert_close(out[ok], ref[ok], torch.float32, "conv with NaN")


@pytest.mark.parametrize("N,H,W", [(0, 4, 4), (2, 0, 3), (1, 3, 0)])
def test_conv2d_empty(N, H, W):
    x = torch.randn(N, 3, H, W, device=DEVICE)
    w, b = torch.randn(4, 3, 3, 3, device=DEVICE), torch.randn(4, device=DEVICE)
    out = torch.empty(N, 4, H, W, device=DEVICE)
    assert conv2d_bias_relu(x, w, b, out) is out


def test_conv2d_bad_inputs():
    x = torch.randn(1, 3, 4, 4, device=DEVICE)
    w, b = torch.randn(4, 3, 3, 3, device=DEVICE), torch.randn(4, device=DEVICE)
    out = torch.empty(1, 4, 4, 4, device=DEVICE)
    with pytest.raises(ValueError, match="same dtype"):
        conv2d_bias_relu(x, w.double(), b, out)
    with pytest.raises(ValueError, match="odd square kernel"):
        conv2d_bias_relu(x, torch.randn(4, 3, 2, 2, device=DEVICE), b, out)
    with pytest.raises(ValueError, match="odd square kernel"):
        conv2d_bias_relu(x, torch.randn(4, 3, 3, 1, device=DEVICE), b, out)
    with pytest.raises(ValueError, match=r"out must have shape \(1, 4, 4, 4\), got \(1, 5, 4, 4\)"):
        conv2d_bias_relu(x, w, b, torch.empty(1, 5, 4, 4, device=DEVICE))
    with pytest.raises(ValueError, match="input channels"):
        conv2d_bias_relu(x, torch.randn(4, 2, 3, 3, device=DEVICE), b, out)
    with pytest.raises(ValueError, match="bias must have shape"):
        conv2d_bias_relu(x, w, torch.randn(5, device=DEVICE), out)
    with pytest.raises(ValueError, match="4-D"):
        conv2d_bias_relu(x[0], w, b, out)
    with pytest.raises(ValueError, match="dtype must be one of"):
        conv2d_bias_relu(x.int(), w.int(), b.int(), out.int())
    with pytest.raises(ValueError, match="unknown config keys"):
        conv2d_bias_relu(x, w, b, out, config={"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16, "warps": 4})


def test_cpu_tensors_need_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    x = torch.randn(1, 3, 4, 4)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        conv2d_bias_relu(x, torch.randn(4, 3, 1, 1), torch.randn(4), torch.empty(1, 4, 4, 4))


@GPU_ONLY
def test_conv2d_device_mismatch():
    x = torch.randn(1, 3, 4, 4, device="cuda")
    with pytest.raises(ValueError, match="same device"):
        conv2d_bias_relu(x, torch.randn(4, 3, 1, 1), torch.randn(4, device="cuda"),
                         torch.empty(1, 4, 4, 4, device="cuda"))


@GPU_ONLY
@pytest.mark.parametrize("config", GPU_TILE_CONFIGS, ids=lambda c: f"{c['BLOCK_M']}x{c['BLOCK_N']}x{c['BLOCK_K']}w8")
@pytest.mark.parametrize("k", [3, 5, 7])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_conv2d_num_warps_8(k, config, dtype):
    case = dict(N=3, Cin=48, Cout=40, H=14, W=13, k=k, dtype=dtype, x_format=CL, out_format=CL,
                x_slice=True, w_cl=False, offset=16, seed=k)
    run_conv_case(case, config=config)


@GPU_ONLY
@pytest.mark.parametrize("k", [1, 3, 5])
def test_conv2d_tf32(k):
    case = dict(N=2, Cin=64, Cout=48, H=12, W=12, k=k, dtype=torch.float32, x_format=CL, out_format=CL,
                x_slice=False, w_cl=False, offset=8, seed=20 + k)
    run_conv_case(case, allow_tf32=True, tol=TF32_REL_TOL)


@GPU_ONLY
def test_conv2d_int64_offsets():
    # x and out hold 2**32 and 3 * 2**31 elements: offsets past 2**31 must not wrap
    n, hw = 2, 2**15
    gen = torch.Generator(device="cuda").manual_seed(5)
    x = torch.randn((n, 2, hw, hw), generator=gen, device="cuda", dtype=torch.float16)
    w = torch.randn((3, 2, 3, 3), generator=gen, device="cuda", dtype=torch.float16)
    b = torch.randn((3,), generator=gen, device="cuda", dtype=torch.float16)
    out = torch.empty((n, 3, hw, hw), device="cuda", dtype=torch.float16)
    conv2d_bias_relu(x, w, b, out)
    # the last 8 rows of the last image: a reference on the last 9 input rows is exact below its first row
    ref = conv_ref(x[-1:, :, -9:], w, b)[:, :, 1:]
    assert_close(out[-1:, :, -8:], ref, torch.float16, "conv past 2**31 elements")
    del x, out
    torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------
# stem_forward


def _stem_cases(count, dtypes, seed):
    return seeded_cases(count, dtypes, seed, lambda rng, i: dict(
        N=rng.randint(1, 3),
        Cin=rng.choice([1, 3, 17, 33, 20, 40]),
        cs=tuple(rng.choice([1, 3, 17, 33, 8]) for _ in range(4)),
        H=rng.randint(1, 12),
        W=rng.randint(1, 12),
        x_slice=i % 3 == 1,
        w_cl=i % 4 == 2,
        lead=rng.choice([0, 2, 5]),
    ))


def _stem_id(c):
    return f"{str(c['dtype'])[6:]}-N{c['N']}-C{c['Cin']}-{'.'.join(map(str, c['cs']))}-{c['H']}x{c['W']}" + layout_id(c)


STEM_CASES = _stem_cases(12, (torch.float32, torch.float16, torch.float64), seed=3)


def make_stem(c, x=None):
    """Inputs and NaN-poisoned outputs: out1 and out4 are the p1/p4 slices of one block output
    (with `lead` extra channels in front and p2/p3 gaps between), t2/t3 standalone."""
    gen = torch.Generator().manual_seed(c["seed"])
    dtype, (c1, c2, c3, c4) = c["dtype"], c["cs"]
    N, Cin, H, W = c["N"], c["Cin"], c["H"], c["W"]
    if x is None:
        x = make_input((N, Cin, H, W), c["x_format"], dtype, DEVICE, gen=gen, channel_slice=c["x_slice"])
    ws, bs = [], []
    for cc in (c1, c2, c3, c4):
        ws.append(make_weight(gen, (cc, Cin, 1, 1), dtype, c["w_cl"]))
        bs.append(randn(gen, (cc,), dtype))
    lead, gap = c["lead"], 6
    big = poisoned((N, lead + c1 + gap + c4 + 2, H, W), dtype, c["out_format"])
    out1 = big[:, lead : lead + c1]
    out4 = big[:, lead + c1 + gap : lead + c1 + gap + c4]
    keep = torch.zeros(big.shape[1], dtype=torch.bool)
    keep[lead : lead + c1] = True
    keep[lead + c1 + gap : lead + c1 + gap + c4] = True
    t2 = poisoned((N, c2, H, W), dtype, c["out_format"])
    t3 = poisoned((N, c3, H, W), dtype, c["out_format"])
    params = (ws[0], bs[0], ws[1], bs[1], ws[2], bs[2], ws[3], bs[3])
    return x, params, (out1, t2, t3, out4), big, keep


def check_stem_outputs(x, params, outs, dtype, what, tol=None):
    for name, o, r in zip(("out1", "t2", "t3", "out4"), outs, stem_ref(x, *params)):
        assert_close(o, r, dtype, f"stem {name}{what}", tol=tol)


def run_stem_case(c, allow_tf32=False, config=None, tol=None):
    x, params, outs, big, keep = make_stem(c)
    assert stem_forward(x, *params, *outs, allow_tf32=allow_tf32, config=config) is None
    assert_untouched(big, keep)
    check_stem_outputs(x, params, outs, c["dtype"], f" {_stem_id(c)}", tol=tol)


@pytest.mark.parametrize("case", STEM_CASES, ids=_stem_id)
def test_stem_forward(case):
    run_stem_case(case)


@BF16_SKIP
@pytest.mark.parametrize("case", _stem_cases(3, (torch.bfloat16,), seed=4), ids=_stem_id)
def test_stem_forward_bf16(case):
    run_stem_case(case)


def test_stem_googlenet_channels():
    # block 3a: Cin=192, (c1, c2a, c3a, c4) = (64, 96, 16, 32), on a tiny image
    case = dict(N=1, Cin=192, cs=(64, 96, 16, 32), H=3, W=4, dtype=torch.float32, x_format=CL, out_format=CL,
                x_slice=False, w_cl=False, lead=0, seed=9)
    run_stem_case(case)


def test_stem_forced_config():
    case = dict(N=2, Cin=19, cs=(5, 17, 3, 9), H=4, W=5, dtype=torch.float32, x_format=NCHW, out_format=CL,
                x_slice=True, w_cl=False, lead=1, seed=10)
    run_stem_case(case, config={"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16, "num_warps": 4, "num_stages": 1})


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("H,W", [(1, 1), (2, 5), (7, 6)])
def test_stem_pool_padding_never_wins(dtype, H, W):
    # all-negative x with W4 = identity and a large bias: out4 - bias is the max-pool itself, so a
    # zero-padding tap winning at the border would show up exactly
    gen = torch.Generator().manual_seed(H * 10 + W)
    N, C = 2, 5
    x = -(torch.rand((N, C, H, W), generator=gen, dtype=torch.float64) + 0.1).to(device=DEVICE, dtype=dtype)
    case = dict(N=N, Cin=C, cs=(2, 3, 1, C), H=H, W=W, dtype=dtype, x_format=NCHW, out_format=NCHW,
                x_slice=False, w_cl=False, lead=0, seed=1)
    _, params, outs, big, keep = make_stem(case, x=x)
    params = list(params)
    params[6] = torch.eye(C, dtype=dtype, device=DEVICE)[:, :, None, None].contiguous()
    params[7] = torch.full((C,), 10.0, dtype=dtype, device=DEVICE)
    stem_forward(x, *params, *outs)
    assert_untouched(big, keep)
    pooled = F.max_pool2d(x.double(), 3, stride=1, padding=1)
    assert (pooled < 0).all()
    assert_close(outs[3] - 10.0, pooled, dtype, "pooled values")
    check_stem_outputs(x, params, outs, dtype, "")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_stem_nan_propagates_like_torch(dtype):
    gen = torch.Generator().manual_seed(21)
    N, C, H, W = 2, 6, 7, 8
    x = randn(gen, (N, C, H, W), dtype, CL)
    # a corner, an edge and an interior pixel, in different channels and images
    x[0, 1, 0, 0] = float("nan")
    x[1, 4, 3, 7] = float("nan")
    x[1, 0, 4, 2] = float("nan")
    case = dict(N=N, Cin=C, cs=(3, 4, 2, 5), H=H, W=W, dtype=dtype, x_format=CL, out_format=CL,
                x_slice=False, w_cl=False, lead=1, seed=22)
    _, params, outs, big, keep = make_stem(case, x=x)
    stem_forward(x, *params, *outs)
    assert_untouched(big, keep)
    for name, o, r in zip(("out1", "t2", "t3", "out4"), outs, stem_ref(x, *params)):
        nan = torch.isnan(r)
        assert nan.any()
        assert torch.equal(torch.isnan(o), nan), f"{name}: NaN pattern differs from torch"
        assert_close(o[~nan], r[~nan], dtype, f"stem {name} outside the NaNs")


def test_stem_zero_width_branches_and_empty():
    # a branch with 0 channels is simply absent; N=0 launches nothing
    case = dict(N=1, Cin=4, cs=(0, 3, 0, 2), H=3, W=3, dtype=torch.float32, x_format=NCHW, out_format=NCHW,
                x_slice=False, w_cl=False, lead=0, seed=30)
    run_stem_case(case)
    case = dict(case, N=0, cs=(2, 3, 1, 2))
    x, params, outs, _, _ = make_stem(case)
    stem_forward(x, *params, *outs)


def test_stem_bad_inputs():
    gen = torch.Generator().manual_seed(40)
    case = dict(N=1, Cin=4, cs=(2, 3, 1, 2), H=3, W=3, dtype=torch.float32, x_format=NCHW, out_format=NCHW,
                x_slice=False, w_cl=False, lead=0, seed=40)
    x, params, outs, _, _ = make_stem(case)
    w1, b1, w2a, b2a, w3a, b3a, w4, b4 = params
    out1, t2, t3, out4 = outs
    with pytest.raises(ValueError, match="same dtype"):
        stem_forward(x, w1, b1, w2a.double(), b2a, w3a, b3a, w4, b4, out1, t2, t3, out4)
    with pytest.raises(ValueError, match=r"w1 must have shape \(C, 4, 1, 1\)"):
        stem_forward(x, randn(gen, (2, 4, 3, 3), torch.float32), b1, w2a, b2a, w3a, b3a, w4, b4,
                     out1, t2, t3, out4)
    with pytest.raises(ValueError, match=r"t2 must have shape \(1, 3, 3, 3\), got \(1, 3, 3, 4\)"):
        stem_forward(x, w1, b1, w2a, b2a, w3a, b3a, w4, b4, out1, poisoned((1, 3, 3, 4), torch.float32, NCHW),
                     t3, out4)
    with pytest.raises(ValueError, match="b4 must have shape"):
        stem_forward(x, w1, b1, w2a, b2a, w3a, b3a, w4, b2a, out1, t2, t3, out4)
    with pytest.raises(ValueError, match="w4 must have shape"):
        stem_forward(x, w1, b1, w2a, b2a, w3a, b3a, randn(gen, (2, 5, 1, 1), torch.float32), b4,
                     out1, t2, t3, out4)


@GPU_ONLY
@pytest.mark.parametrize("config", GPU_TILE_CONFIGS, ids=lambda c: f"{c['BLOCK_M']}x{c['BLOCK_N']}x{c['BLOCK_K']}w8")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_stem_num_warps_8(config, dtype):
    case = dict(N=3, Cin=192, cs=(64, 96, 16, 32), H=14, W=13, dtype=dtype, x_format=CL, out_format=CL,
                x_slice=True, w_cl=False, lead=0, seed=50)
    run_stem_case(case, config=config)


@GPU_ONLY
def test_stem_tf32():
    case = dict(N=2, Cin=192, cs=(64, 96, 16, 32), H=12, W=12, dtype=torch.float32, x_format=CL, out_format=CL,
                x_slice=False, w_cl=False, lead=0, seed=51)
    run_stem_case(case, allow_tf32=True, tol=TF32_REL_TOL)


# ---------------------------------------------------------------------------------------------
# outputs with layouts of their own, ReLU masks, the GPU tiles, bf16 under the interpreter


def test_stem_outputs_with_layouts_of_their_own():
    # out1, t2, t3 and out4 as four separate tensors in different layouts: a kernel that wrote one output with
    # another's strides would pass when all four are slices of one buffer
    gen = torch.Generator().manual_seed(60)
    N, Cin, H, W, cs = 2, 7, 5, 6, (4, 3, 2, 5)
    x = make_input((N, Cin, H, W), CL, torch.float32, DEVICE, gen=gen)
    params = []
    for c in cs:
        params += [make_weight(gen, (c, Cin, 1, 1), torch.float32), randn(gen, (c,), torch.float32)]
    # w2a with an input-channel stride of its own (every other channel of a wider weight): the kernel reads the
    # three x-reading weights with one stride, so the launcher must notice
    params[2] = make_weight(gen, (cs[1], 2 * Cin, 1, 1), torch.float32)[:, ::2]
    out1 = poisoned((N, cs[0] + 3, H, W), torch.float32, NCHW)[:, 1 : 1 + cs[0]]
    t2 = poisoned((N, cs[1], H, W), torch.float32, CL)
    t3 = poisoned((N, cs[2], H, W), torch.float32, NCHW)
    out4 = poisoned((N, cs[3] + 2, H, W), torch.float32, CL)[:, 2:]
    assert out1.stride() != out4.stride()
    # 7 is never a mask value: an unwritten element shows
    masks = [torch.full((N, cs[0], H, W), 7, dtype=torch.uint8, device=DEVICE).contiguous(memory_format=CL),
             torch.full((N, cs[3], H, W), 7, dtype=torch.uint8, device=DEVICE)]
    stem_forward(x, *params, out1, t2, t3, out4, mask1=masks[0], mask4=masks[1])
    refs = stem_ref(x, *params)
    for name, o, r in zip(("out1", "t2", "t3", "out4"), (out1, t2, t3, out4), refs):
        assert_close(o, r, torch.float32, f"stem {name} in a layout of its own")
    for name, m, o in (("mask1", masks[0], out1), ("mask4", masks[1], out4)):
        assert torch.equal(m.bool(), o > 0), f"{name} is not the ReLU mask of its output"


def test_conv_relu_mask_marks_positive_and_nan_outputs():
    gen = torch.Generator().manual_seed(61)
    x = randn(gen, (2, 3, 6, 7), torch.float32, CL)
    x[1, 2, 0, 6] = float("nan")
    w = make_weight(gen, (5, 3, 3, 3), torch.float32)
    b = randn(gen, (5,), torch.float32) - 0.5  # many outputs clamp to 0
    out = poisoned((2, 5, 6, 7), torch.float32, NCHW)
    mask = torch.full((2, 9, 6, 7), 7, dtype=torch.uint8, device=DEVICE)[:, 2:7]  # 7: never a mask value
    conv2d_bias_relu(x, w, b, out, mask=mask)
    want = (out > 0) | torch.isnan(out)
    assert (out == 0).any() and torch.isnan(out).any()
    assert torch.equal(mask, want.to(torch.uint8))


@pytest.mark.slow
@pytest.mark.parametrize("config", GPU_TILE_CONFIGS, ids=lambda c: f"{c['BLOCK_M']}x{c['BLOCK_N']}x{c['BLOCK_K']}")
def test_gpu_tiles_under_the_interpreter(config):
    # the tiles the GPU tests force, on shapes small enough to interpret (num_warps means nothing here)
    case = dict(N=1, Cin=20, Cout=17, H=9, W=8, k=3, dtype=torch.float32, x_format=CL, out_format=CL,
                x_slice=True, w_cl=False, offset=3, seed=62)
    run_conv_case(case, config=config)
    stem = dict(N=1, Cin=19, cs=(5, 17, 3, 9), H=9, W=8, dtype=torch.float32, x_format=CL, out_format=NCHW,
                x_slice=False, w_cl=False, lead=1, seed=63)
    run_stem_case(stem, config=config)


@pytest.mark.skipif(CUDA, reason="the refusal is for Triton's CPU interpreter")
def test_bf16_kernels_are_refused_under_the_interpreter():
    x = torch.randn(1, 3, 4, 4, dtype=torch.bfloat16)
    w, b = torch.randn(4, 3, 3, 3, dtype=torch.bfloat16), torch.randn(4, dtype=torch.bfloat16)
    out = torch.zeros(1, 4, 4, 4, dtype=torch.bfloat16)
    with pytest.raises(TypeError, match="bfloat16 kernels give wrong results under Triton's CPU interpreter"):
        conv2d_bias_relu(x, w, b, out)
    assert (out == 0).all()


@pytest.mark.parametrize("flat", [True, False], ids=["flat-k-loop", "nested-k-loops"])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_both_forms_of_the_k_loop(k, flat):
    # the flattened (tap, channel block) loop of the num_warps=4 configs and the nested loops of num_warps=8 ones;
    # C_IN of 20 in 16-channel blocks: a partial block at every tap
    case = dict(N=2, Cin=20, Cout=17, H=5, W=6, k=k, dtype=torch.float32, x_format=CL, out_format=NCHW,
                x_slice=True, w_cl=True, offset=2, seed=70 + k)
    run_conv_case(case, config={"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16, "FLAT": flat})
